package io.tensorpool.examples;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The examples' command line: GNU-style long flags ({@code --name value} or
 * {@code --name=value}), the same names and defaults as the Rust examples
 * (examples/producer.rs, examples/consumer.rs). Unknown flags and bad values are errors
 * that name the flag.
 */
final class Cli
{
    private final Map<String, List<String>> values = new HashMap<>();
    private final Set<String> switches;

    Cli(final String program, final String[] args, final Set<String> valued, final Set<String> switches)
    {
        this.switches = switches;
        for (int i = 0; i < args.length; i++)
        {
            final String arg = args[i];
            if (arg.equals("--help") || arg.equals("-h"))
            {
                System.out.println("usage: " + program + " --aeron-dir DIR " + flagsHelp(valued, switches));
                System.out.println("(the flags of the Rust example; see README.md, \"Using tensorpool from Java\")");
                System.exit(0);
            }
            if (!arg.startsWith("--"))
            {
                throw new UsageException("unexpected argument " + arg);
            }
            final int eq = arg.indexOf('=');
            final String name = eq < 0 ? arg.substring(2) : arg.substring(2, eq);
            if (switches.contains(name))
            {
                if (eq >= 0)
                {
                    throw new UsageException("--" + name + " takes no value");
                }
                values.computeIfAbsent(name, k -> new ArrayList<>()).add("true");
            }
            else if (valued.contains(name))
            {
                final String value;
                if (eq >= 0)
                {
                    value = arg.substring(eq + 1);
                }
                else if (i + 1 < args.length)
                {
                    value = args[++i];
                }
                else
                {
                    throw new UsageException("--" + name + " needs a value");
                }
                values.computeIfAbsent(name, k -> new ArrayList<>()).add(value);
            }
            else
            {
                throw new UsageException("unknown flag --" + name);
            }
        }
    }

    private static String flagsHelp(final Set<String> valued, final Set<String> switches)
    {
        final StringBuilder sb = new StringBuilder();
        valued.stream().sorted().filter(n -> !n.equals("aeron-dir")).forEach(n -> sb.append("[--").append(n).append(" V] "));
        switches.stream().sorted().forEach(n -> sb.append("[--").append(n).append("] "));
        return sb.toString().trim();
    }

    boolean flag(final String name)
    {
        return switches.contains(name) && values.containsKey(name);
    }

    String string(final String name, final String fallback)
    {
        final List<String> v = values.get(name);
        if (v == null)
        {
            if (fallback == null)
            {
                throw new UsageException("--" + name + " is required");
            }
            return fallback;
        }
        return v.get(v.size() - 1);
    }

    List<String> strings(final String name, final String fallback)
    {
        final List<String> v = values.get(name);
        return v == null ? List.of(fallback) : v;
    }

    boolean has(final String name)
    {
        return values.containsKey(name);
    }

    /** An unsigned 32-bit value (ids), as a long. */
    long u32(final String name, final long fallback)
    {
        final long v = u64(name, fallback);
        if (v > 0xFFFF_FFFFL)
        {
            throw new UsageException("--" + name + " " + v + " does not fit 32 bits");
        }
        return v;
    }

    long u64(final String name, final long fallback)
    {
        if (!has(name))
        {
            return fallback;
        }
        final String s = string(name, null);
        try
        {
            final long v = Long.parseLong(s);
            if (v < 0)
            {
                throw new NumberFormatException();
            }
            return v;
        }
        catch (final NumberFormatException e)
        {
            throw new UsageException("--" + name + " " + s + " is not a non-negative integer");
        }
    }

    double f64(final String name, final double fallback)
    {
        if (!has(name))
        {
            return fallback;
        }
        final String s = string(name, null);
        try
        {
            final double v = Double.parseDouble(s);
            if (!(v >= 0) || Double.isInfinite(v))
            {
                throw new NumberFormatException();
            }
            return v;
        }
        catch (final NumberFormatException e)
        {
            throw new UsageException("--" + name + " " + s + " is not a non-negative number");
        }
    }

    /** A bad command line: printed with the program's usage, exit status 2. */
    static final class UsageException extends RuntimeException
    {
        private static final long serialVersionUID = 1L;

        UsageException(final String message)
        {
            super(message);
        }
    }
}
