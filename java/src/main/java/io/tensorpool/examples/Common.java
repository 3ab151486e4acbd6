package io.tensorpool.examples;

import java.util.concurrent.locks.LockSupport;
import sun.misc.Signal;

/**
 * What the Java producer and consumer share with the Rust and C examples: the test
 * pattern (byte i of the frame with sequence s is (s + i) mod 251), SIGINT/SIGTERM
 * handling (stop, detach, print the summary, exit 128 + the signal number), the
 * CLOCK_MONOTONIC clock the driver's lease deadlines use, and an idle backoff.
 */
final class Common
{
    /** The pattern's period. */
    static final int PATTERN_PERIOD = 251;

    private static volatile int interruptedBy = 0;

    private Common()
    {
    }

    /** Bytes 0, 1, ..., 250, 0, 1, ... of length {@code maxLen + 251}: frame s of len bytes
     * is the range starting at s mod 251 (one copy to fill, one comparison to check). */
    static byte[] pattern(final int maxLen)
    {
        final byte[] reference = new byte[maxLen + PATTERN_PERIOD];
        for (int i = 0; i < reference.length; i++)
        {
            reference[i] = (byte)(i % PATTERN_PERIOD);
        }
        return reference;
    }

    /** Offset of frame {@code seq} in {@link #pattern}. */
    static int patternOffset(final long seq)
    {
        return (int)Long.remainderUnsigned(seq, PATTERN_PERIOD);
    }

    /** SIGINT and SIGTERM set the interrupt flag instead of ending the JVM. */
    static void catchInterrupts()
    {
        for (final String name : new String[] {"INT", "TERM"})
        {
            final Signal signal = new Signal(name);
            Signal.handle(signal, s -> interruptedBy = s.getNumber());
        }
    }

    /** The signal that interrupted the run, 0 if none did. */
    static int interrupted()
    {
        return interruptedBy;
    }

    /** CLOCK_MONOTONIC nanoseconds: on Linux, System.nanoTime reads that clock, the one the
     * driver stamps lease deadlines and announces with (Driver Model §4.2). */
    static long monotonicNowNs()
    {
        return System.nanoTime();
    }

    /** Spin while there is work, then park 1 us doubling up to 1 ms (as the C examples). */
    static final class Idle
    {
        private long parkNs = 0;

        void idle(final int work)
        {
            if (work > 0)
            {
                parkNs = 0;
                return;
            }
            parkNs = parkNs == 0 ? 1_000 : Math.min(parkNs * 2, 1_000_000);
            LockSupport.parkNanos(parkNs);
        }

        void reset()
        {
            parkNs = 0;
        }
    }

    /** A JSON number with {@code decimals} decimals, as the Rust examples print it. */
    static String fixed(final double value, final int decimals)
    {
        return String.format(java.util.Locale.ROOT, "%." + decimals + "f", value);
    }
}
