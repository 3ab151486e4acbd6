package io.tensorpool.examples;

import io.aeron.Subscription;
import io.aeron.logbuffer.Header;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import shm.tensorpool.control.ClockDomain;
import shm.tensorpool.control.FrameDescriptorDecoder;
import shm.tensorpool.control.MessageHeaderDecoder;
import shm.tensorpool.control.ShmPoolAnnounceDecoder;
import shm.tensorpool.control.SlotHeaderDecoder;
import shm.tensorpool.control.TensorHeaderDecoder;
import shm.tensorpool.driver.PublishMode;
import shm.tensorpool.driver.Role;

/**
 * Reads frames from a tensorpool stream through a running SHM driver: the Java twin of
 * examples/consumer.rs, with the same flags, pattern check (--verify) and JSON summary
 * line, so it pairs with any tensorpool producer.
 *
 * A descriptor becomes a frame only as the Rust consumer accepts one (Wire Spec §8.2,
 * §8.3, §15.3, §15.21): its epoch is the mapped one; the slot's seq_commit, read with a
 * volatile (acquire) load, is COMMITTED for exactly its sequence; the slot is copied, and
 * after an acquire fence seq_commit is read again and must not have changed; every slot
 * field fits the mapped geometry and the embedded TensorHeader passes the §8.2 checks;
 * after the payload was read in place, seq_commit must still hold. Anything else is a
 * counted drop and delivers nothing: drops_invalid (the slot contradicts the descriptor
 * or fails validation), drops_late (overwritten before or during the read), drops_other
 * (unmapped, another epoch, duplicate), drops_gap (sequences no descriptor named).
 *
 * It also reads the stream's metadata (Wire Spec §10.3) from the metadata stream
 * (--metadata-stream-id, 1300), prints each new version on stderr, and adds to the JSON
 * line the fields the Rust and C consumers print: meta_version, meta_name, meta_summary,
 * meta_attrs, meta_changes, first_frame_meta_version, last_frame_meta_version,
 * frames_meta_unseen, frame_meta_regressions (and metadata_dropped).
 *
 * Not in this example: per-consumer descriptor streams (--per-consumer-descriptor is
 * refused), resynchronising after being lapped (drops_resync stays 0), waiting for a new
 * epoch after a producer revoke, QosConsumer and ConsumerHello messages.
 */
public final class Consumer implements DriverClient.Listener
{
    private static final int FRAMES_PER_CYCLE = 64;
    private static final int TENSOR_HEADER_LEN = MessageHeaderDecoder.ENCODED_LENGTH + TensorHeaderDecoder.BLOCK_LENGTH;
    private static final int TENSOR_OFFSET = SlotHeaderDecoder.BLOCK_LENGTH + 4;
    /** Dtype element sizes by raw value (Wire Spec §8.2); 0 = unknown. */
    private static final int[] DTYPE_SIZE = {0, 1, 1, 2, 2, 4, 4, 8, 8, 4, 8, 1, 0, 1, 1};

    private final List<Path> allowed = new ArrayList<>();
    private final MessageHeaderDecoder headerIn = new MessageHeaderDecoder();
    private final FrameDescriptorDecoder descriptorIn = new FrameDescriptorDecoder();
    private final ShmPoolAnnounceDecoder announceIn = new ShmPoolAnnounceDecoder();
    private final SlotHeaderDecoder slotIn = new SlotHeaderDecoder();
    private final TensorHeaderDecoder tensorIn = new TensorHeaderDecoder();
    private final UnsafeBuffer image = new UnsafeBuffer(new byte[Layout.HEADER_SLOT_BYTES]);
    private byte[] pattern = Common.pattern(0);
    private byte[] payloadCopy = new byte[0];

    private long streamId;
    private long announcePeriodNs;
    private long joinedNs;
    private MappedEpoch mapped;
    private Layout latestAnnounce;
    private long highestEpoch = -1;
    private DriverClient client;
    private boolean attachedAtEnd;
    private boolean verify;
    /** Whether the last tensor that passed {@link #tensorFits} is the examples' shape: a
     * one-dimensional UINT8 tensor spanning the whole payload. */
    private boolean patternShape;

    // Sequence state of the mapped epoch (src/client/consumer/frame.rs SeqTracker, without resync).
    private long lastSeq = -1;
    private final long[] forgotten = new long[16];
    private int forgottenLen;

    // Report.
    private long framesReceived;
    private long framesVerified;
    private long verifyFailures;
    /** --expect-trace-id: frame s must carry FrameDescriptor.traceId expectTraceId + s. */
    private long expectTraceId;
    private long traceIdsVerified;
    private long traceFailures;
    private long dropsGap;
    private long dropsLate;
    private long dropsInvalid;
    private long dropsOther;
    private long epochChanges;
    private boolean interrupted;
    private long bytesReceived;
    private long firstFrameNs = -1;
    private long lastFrameNs = -1;
    private Metadata.Listener metadata;
    private long firstFrameMetaVersion = -1;
    private long lastFrameMetaVersion = -1;
    private long framesMetaUnseen;
    private long frameMetaRegressions;

    public static void main(final String[] args)
    {
        final Cli cli;
        try
        {
            cli = new Cli("Consumer", args,
                Set.of("aeron-dir", "stream-id", "frames", "timeout-s", "channel", "control-stream-id",
                    "announce-stream-id", "descriptor-stream-id", "qos-stream-id", "allowed-base-dir", "consumer-id",
                    "per-consumer-descriptor", "announce-period-ms", "keepalive-ms", "expect-trace-id",
                    "metadata-stream-id"),
                Set.of("verify"));
            cli.string("aeron-dir", null);
            if (cli.has("per-consumer-descriptor"))
            {
                throw new Cli.UsageException("--per-consumer-descriptor is not supported by the Java example");
            }
        }
        catch (final Cli.UsageException e)
        {
            System.err.println("consumer: " + e.getMessage());
            System.exit(2);
            return;
        }
        Common.catchInterrupts();
        final Consumer consumer = new Consumer();
        final long frames = cli.u64("frames", 1000);
        boolean failed = false;
        try
        {
            consumer.run(cli, frames);
        }
        catch (final RuntimeException e)
        {
            System.err.println("consumer: " + e.getMessage());
            failed = true;
        }
        System.out.println(consumer.json());
        System.out.flush();
        if (Common.interrupted() != 0)
        {
            System.exit(128 + Common.interrupted());
        }
        final boolean verified = (!consumer.verify ||
            (consumer.verifyFailures == 0 && consumer.framesVerified == consumer.framesReceived)) &&
            consumer.traceFailures == 0;
        if (!verified)
        {
            System.err.println("consumer: " + consumer.framesVerified + " of " + consumer.framesReceived +
                " frames verified (" + consumer.verifyFailures + " failed)");
        }
        // Exit 0 only when every frame asked for arrived (verified, if asked) and nothing failed.
        System.exit(!failed && consumer.framesReceived >= frames && verified ? 0 : 1);
    }

    private String json()
    {
        final double secs = firstFrameNs >= 0 ? (lastFrameNs - firstFrameNs) / 1e9 : 0.0;
        final double fps = secs > 0 ? framesReceived / secs : 0.0;
        final double mibps = secs > 0 ? bytesReceived / secs / (1024.0 * 1024.0) : 0.0;
        return "{\"role\":\"consumer\",\"frames_received\":" + framesReceived +
            ",\"frames_verified\":" + framesVerified +
            ",\"verify_failures\":" + verifyFailures +
            ",\"drops_gap\":" + dropsGap +
            ",\"drops_late\":" + dropsLate +
            ",\"drops_resync\":0" +
            ",\"drops_invalid\":" + dropsInvalid +
            ",\"drops_other\":" + dropsOther +
            ",\"epoch_changes\":" + epochChanges +
            ",\"trace_ids_verified\":" + traceIdsVerified +
            ",\"trace_failures\":" + traceFailures +
            ",\"interrupted\":" + interrupted +
            ",\"elapsed_s\":" + Common.fixed(secs, 6) +
            ",\"frames_per_s\":" + Common.fixed(fps, 3) +
            ",\"mib_per_s\":" + Common.fixed(mibps, 3) +
            ",\"meta_version\":" + (metadata == null ? 0 : metadata.version) +
            ",\"meta_name\":" + Metadata.json(metadata == null ? "" : metadata.name) +
            ",\"meta_summary\":" + Metadata.json(metadata == null ? "" : metadata.summary) +
            ",\"meta_attrs\":" + Metadata.json(metadata == null ? "" : Metadata.attrsText(metadata.attributes)) +
            ",\"meta_changes\":" + (metadata == null ? 0 : metadata.changes) +
            ",\"metadata_dropped\":" + (metadata == null ? 0 : metadata.dropped) +
            ",\"first_frame_meta_version\":" + Math.max(0, firstFrameMetaVersion) +
            ",\"last_frame_meta_version\":" + Math.max(0, lastFrameMetaVersion) +
            ",\"frames_meta_unseen\":" + framesMetaUnseen +
            ",\"frame_meta_regressions\":" + frameMetaRegressions + "}";
    }

    private void run(final Cli cli, final long frames)
    {
        final double timeoutS = cli.f64("timeout-s", 30.0);
        final long deadline = System.nanoTime() + (long)(timeoutS * 1e9);
        verify = cli.flag("verify");
        expectTraceId = cli.u64("expect-trace-id", 0);
        streamId = cli.u32("stream-id", 10000);
        announcePeriodNs = Math.max(1, cli.u64("announce-period-ms", 1000)) * 1_000_000L;
        final long keepaliveBoundNs = cli.u64("keepalive-ms", 0) * 1_000_000L;
        if (cli.has("keepalive-ms") && keepaliveBoundNs == 0)
        {
            throw new Cli.UsageException("--keepalive-ms must be at least 1");
        }
        for (final String dir : cli.strings("allowed-base-dir", "/dev/shm/tensorpool"))
        {
            allowed.add(Paths.get(dir).toAbsolutePath().normalize());
        }
        final String channel = cli.string("channel", "aeron:ipc?term-length=4m");
        joinedNs = Common.monotonicNowNs();
        client = new DriverClient(
            cli.string("aeron-dir", null), channel, (int)cli.u32("control-stream-id", 1000),
            (int)cli.u32("announce-stream-id", 1001), Role.CONSUMER, streamId, cli.u32("consumer-id", 0),
            PublishMode.NULL_VAL, keepaliveBoundNs, (long)(timeoutS * 1e9), this);
        try (DriverClient c = client)
        {
            final Subscription descriptors = c.aeron.addSubscription(
                channel, (int)cli.u32("descriptor-stream-id", 1100));
            metadata = new Metadata.Listener(streamId);
            final Subscription metadataIn = c.aeron.addSubscription(
                channel, (int)cli.u32("metadata-stream-id", Metadata.DEFAULT_STREAM_ID));
            final Common.Idle idle = new Common.Idle();
            while (framesReceived < frames && System.nanoTime() < deadline)
            {
                if (Common.interrupted() != 0)
                {
                    interrupted = true;
                    break;
                }
                int work = c.doWork(Common.monotonicNowNs());
                metadata.streamId(streamId);
                work += metadataIn.poll(metadata::onMessage, 8);
                work += descriptors.poll(this::onDescriptor, (int)Math.min(FRAMES_PER_CYCLE, frames - framesReceived));
                idle.idle(work);
            }
            attachedAtEnd = c.isAttached();
        }
        if (!interrupted && framesReceived < frames)
        {
            final String refusal = attachedAtEnd || client.lastRefusal() == null ? "" :
                "; not attached: the driver refused the attach (" + client.lastRefusal() + ")";
            throw new IllegalStateException(
                "received " + framesReceived + " of " + frames + " frames before the timeout" + refusal);
        }
    }

    @Override
    public boolean onAttached(final Layout grant)
    {
        streamId = grant.streamId;
        // An announce of a higher epoch may have overtaken the response: map that one.
        final Layout layout = latestAnnounce != null && latestAnnounce.epoch > grant.epoch ?
            withLease(latestAnnounce, grant.leaseId) : grant;
        highestEpoch = Math.max(highestEpoch, layout.epoch);
        return map(layout);
    }

    @Override
    public void onLeaseEnded(final String why)
    {
        System.err.println("consumer: " + why + "; reattaching");
        unmap();
    }

    private boolean map(final Layout layout)
    {
        unmap();
        try
        {
            mapped = new MappedEpoch(layout, allowed, false);
            System.err.println("consumer: mapped stream " + layout.streamId + " epoch " + layout.epoch);
            return true;
        }
        catch (final java.io.IOException | RuntimeException e)
        {
            System.err.println("consumer: mapping epoch " + layout.epoch + " refused: " + e.getMessage());
            return false;
        }
    }

    private void unmap()
    {
        mapped = null;
        lastSeq = -1;
        forgottenLen = 0;
    }

    private static Layout withLease(final Layout announced, final long leaseId)
    {
        return announced.leaseId == leaseId ? announced : announced.withLease(leaseId);
    }

    /** Pool announces (Wire Spec §10.1.1): a fresh one of a higher epoch is remapped to. */
    @Override
    public void onControlMessage(
        final DirectBuffer buffer, final int offset, final int length, final int templateId, final int version)
    {
        headerIn.wrap(buffer, offset);
        if (templateId != ShmPoolAnnounceDecoder.TEMPLATE_ID || version > ShmPoolAnnounceDecoder.SCHEMA_VERSION ||
            headerIn.blockLength() < ShmPoolAnnounceDecoder.BLOCK_LENGTH)
        {
            return;
        }
        announceIn.wrap(buffer, offset + MessageHeaderDecoder.ENCODED_LENGTH, headerIn.blockLength(), version);
        if (announceIn.streamId() != streamId || announceIn.epoch() <= highestEpoch && mapped != null)
        {
            return;
        }
        final long ts = announceIn.announceTimestampNs();
        final long window = 3 * announcePeriodNs;
        final boolean fresh;
        if (announceIn.announceClockDomain() == ClockDomain.MONOTONIC)
        {
            final long now = Common.monotonicNowNs();
            fresh = ts >= joinedNs && now - ts <= window;
        }
        else
        {
            final long nowRealtime = System.currentTimeMillis() * 1_000_000L;
            fresh = Math.abs(nowRealtime - ts) <= window;
        }
        if (!fresh || announceIn.epoch() < highestEpoch)
        {
            return;
        }
        final Layout lease = client == null ? null : client.grant();
        final Layout layout;
        try
        {
            layout = Layout.fromAnnounce(announceIn, lease == null ? 0 : lease.leaseId);
        }
        catch (final Layout.InvalidLayout | IndexOutOfBoundsException e)
        {
            System.err.println("consumer: invalid announce ignored: " + e.getMessage());
            return;
        }
        latestAnnounce = layout;
        if (mapped == null || lease == null || layout.epoch <= mapped.layout.epoch)
        {
            return;
        }
        // Wire Spec §15.21: a higher epoch is a hard boundary; nothing is carried over.
        highestEpoch = layout.epoch;
        epochChanges++;
        if (!map(layout))
        {
            client.restart();
        }
    }

    private void onDescriptor(final DirectBuffer buffer, final int offset, final int length, final Header h)
    {
        if (length < MessageHeaderDecoder.ENCODED_LENGTH)
        {
            return;
        }
        headerIn.wrap(buffer, offset);
        if (headerIn.schemaId() != FrameDescriptorDecoder.SCHEMA_ID ||
            headerIn.templateId() != FrameDescriptorDecoder.TEMPLATE_ID)
        {
            return; // other messages may share the stream
        }
        if (headerIn.version() > FrameDescriptorDecoder.SCHEMA_VERSION ||
            headerIn.blockLength() < FrameDescriptorDecoder.BLOCK_LENGTH ||
            length < MessageHeaderDecoder.ENCODED_LENGTH + headerIn.blockLength())
        {
            dropsInvalid++;
            return;
        }
        descriptorIn.wrap(buffer, offset + MessageHeaderDecoder.ENCODED_LENGTH, headerIn.blockLength(), headerIn.version());
        if (descriptorIn.streamId() != streamId)
        {
            return;
        }
        switch (readFrame(descriptorIn.epoch(), descriptorIn.seq()))
        {
            case DELIVERED:
                checkTraceId(descriptorIn.seq(), descriptorIn.traceId());
                break;
            case LATE:
                dropsLate++;
                break;
            case INVALID:
                dropsInvalid++;
                break;
            default:
                dropsOther++;
                break;
        }
    }

    /** The descriptor's trace id (0 = absent, Wire Spec §10.2.1) against --expect-trace-id. */
    private void checkTraceId(final long seq, final long traceId)
    {
        if (expectTraceId == 0)
        {
            return;
        }
        if (traceId == expectTraceId + seq)
        {
            if (traceIdsVerified++ == 0)
            {
                System.err.println("consumer: frame " + seq + " carries trace id " + traceId);
            }
        }
        else
        {
            traceFailures++;
        }
    }

    private enum Outcome
    {
        DELIVERED, LATE, INVALID, OTHER
    }

    private Outcome readFrame(final long epoch, final long seq)
    {
        if (mapped == null || epoch != mapped.layout.epoch)
        {
            return Outcome.OTHER;
        }
        if (lastSeq >= 0 && Long.compareUnsigned(seq, lastSeq) <= 0)
        {
            return Outcome.OTHER; // duplicate
        }
        final int nslots = mapped.layout.headerNslots;
        final int index = (int)(seq & (nslots - 1));
        final int slot = MappedEpoch.headerSlotOffset(index);
        final UnsafeBuffer ring = mapped.header;

        final long first = ring.getLongVolatile(slot);
        final long found = first >>> 1;
        if ((first & 1) == 0)
        {
            if (Long.compareUnsigned(found, seq) > 0)
            {
                confirm(seq); // a later lap is being written: the frame existed
                return Outcome.LATE;
            }
            forget(seq);
            return Outcome.INVALID; // not committed: the slot contradicts the descriptor
        }
        if (found != seq)
        {
            if (Long.compareUnsigned(found, seq) > 0)
            {
                confirm(seq);
                return Outcome.LATE; // overwritten
            }
            forget(seq);
            return Outcome.INVALID; // stale: the slot never held this sequence
        }
        confirm(seq);
        ring.getBytes(slot, image, 0, Layout.HEADER_SLOT_BYTES);
        // No copied byte may be read after the re-check below.
        VarHandle.acquireFence();
        if (ring.getLongVolatile(slot) != first)
        {
            return Outcome.LATE;
        }

        // Slot fields against the mapped geometry (Wire Spec §8.2, §9, §10.2.1).
        slotIn.wrap(image, 0, SlotHeaderDecoder.BLOCK_LENGTH, SlotHeaderDecoder.SCHEMA_VERSION);
        if (image.getInt(SlotHeaderDecoder.BLOCK_LENGTH, ByteOrder.LITTLE_ENDIAN) != TENSOR_HEADER_LEN)
        {
            return Outcome.INVALID;
        }
        final long payloadSlot = slotIn.payloadSlot();
        final int pool = mapped.poolIndex(slotIn.poolId());
        if (payloadSlot != index || pool < 0)
        {
            return Outcome.INVALID;
        }
        final Layout.Pool p = mapped.layout.pools.get(pool);
        final long len = slotIn.valuesLenBytes();
        if (payloadSlot >= p.nslots || len > p.strideBytes || slotIn.payloadOffset() != 0)
        {
            return Outcome.INVALID;
        }
        try
        {
            if (!tensorFits(len))
            {
                return Outcome.INVALID;
            }
        }
        catch (final ArithmeticException e)
        {
            return Outcome.INVALID; // a layout whose extent overflows 64 bits
        }

        // The payload, read in place; only a seqlock that still holds makes it valid.
        final int n = (int)len;
        boolean ok = true;
        if (verify)
        {
            if (payloadCopy.length < n)
            {
                payloadCopy = new byte[n];
            }
            mapped.pools.get(pool).getBytes((int)MappedEpoch.payloadSlotOffset(index, p.strideBytes), payloadCopy, 0, n);
            ok = isPatternFrame(seq, n);
        }
        VarHandle.acquireFence();
        if (ring.getLongVolatile(slot) != first)
        {
            return Outcome.LATE;
        }
        final long frameMetaVersion = slotIn.metaVersion();
        if (firstFrameMetaVersion < 0)
        {
            firstFrameMetaVersion = frameMetaVersion;
        }
        else if (frameMetaVersion < lastFrameMetaVersion)
        {
            frameMetaRegressions++;
        }
        lastFrameMetaVersion = frameMetaVersion;
        if (frameMetaVersion != 0 && frameMetaVersion != 0xFFFF_FFFFL &&
            (metadata == null || frameMetaVersion > metadata.version))
        {
            framesMetaUnseen++;
        }
        final long now = System.nanoTime();
        if (firstFrameNs < 0)
        {
            firstFrameNs = now;
        }
        lastFrameNs = now;
        framesReceived++;
        bytesReceived += n;
        if (verify)
        {
            if (ok)
            {
                framesVerified++;
            }
            else
            {
                verifyFailures++;
            }
        }
        return Outcome.DELIVERED;
    }

    /** The embedded TensorHeader: schema 900 v1 with a 184-byte block, and the Wire Spec
     * §8.2 rules (rank 1..8, known dtype, order and progress unit, non-negative dims and
     * strides, strides that do not overlap, progress stride consistent), spanning no more
     * than the payload's {@code len} bytes. */
    private boolean tensorFits(final long len)
    {
        headerIn.wrap(image, TENSOR_OFFSET);
        if (headerIn.schemaId() != TensorHeaderDecoder.SCHEMA_ID || headerIn.templateId() != TensorHeaderDecoder.TEMPLATE_ID ||
            headerIn.version() != TensorHeaderDecoder.SCHEMA_VERSION || headerIn.blockLength() != TensorHeaderDecoder.BLOCK_LENGTH)
        {
            return false;
        }
        final TensorHeaderDecoder t = tensorIn.wrap(
            image, TENSOR_OFFSET + MessageHeaderDecoder.ENCODED_LENGTH, TensorHeaderDecoder.BLOCK_LENGTH,
            TensorHeaderDecoder.SCHEMA_VERSION);
        final int ndims = t.ndims();
        final int dtype = t.dtypeRaw();
        if (ndims < 1 || ndims > TensorHeaderDecoder.dimsLength() || dtype < 0 || dtype >= DTYPE_SIZE.length ||
            DTYPE_SIZE[dtype] == 0)
        {
            return false;
        }
        final int order = t.majorOrderRaw();
        final int unit = t.progressUnitRaw();
        if (order != 1 && order != 2 || unit < 0 || unit > 2)
        {
            return false;
        }
        final long[] strides = new long[ndims];
        long min = DTYPE_SIZE[dtype];
        boolean empty = false;
        for (int step = 0; step < ndims; step++)
        {
            final int i = order == 1 ? ndims - 1 - step : step;
            final long dim = t.dims(i);
            final long declared = t.strides(i);
            if (dim < 0 || declared < 0 || declared != 0 && declared < min)
            {
                return false;
            }
            strides[i] = declared == 0 ? min : declared;
            empty |= dim == 0;
            min = Math.multiplyExact(strides[i], Math.max(dim, 1));
        }
        long extent = 0;
        if (!empty)
        {
            for (int i = 0; i < ndims; i++)
            {
                extent = Math.addExact(extent, Math.multiplyExact(t.dims(i) - 1L, strides[i]));
            }
            extent += DTYPE_SIZE[dtype];
        }
        if (unit != 0)
        {
            final int dim = unit == 1 ? 0 : 1;
            if (dim >= ndims || strides[dim] != t.progressStrideBytes())
            {
                return false;
            }
        }
        patternShape = dtype == 1 && ndims == 1 && t.dims(0) == len;
        return extent <= len;
    }

    /** The producer examples' frame: a 1-D UINT8 tensor over the payload holding the pattern. */
    private boolean isPatternFrame(final long seq, final int n)
    {
        if (!patternShape)
        {
            return false;
        }
        if (pattern.length < n + Common.PATTERN_PERIOD)
        {
            pattern = Common.pattern(n);
        }
        final int from = Common.patternOffset(seq);
        return Arrays.equals(payloadCopy, 0, n, pattern, from, from + n);
    }

    /** A sequence its slot confirmed: the ones never seen since the last are gaps. */
    private void confirm(final long seq)
    {
        if (lastSeq >= 0 && Long.compareUnsigned(seq, lastSeq) <= 0)
        {
            return;
        }
        long between = 0;
        int kept = 0;
        for (int i = 0; i < forgottenLen; i++)
        {
            final long s = forgotten[i];
            if (Long.compareUnsigned(s, seq) > 0)
            {
                forgotten[kept++] = s;
            }
            else if (Long.compareUnsigned(s, seq) < 0 && (lastSeq < 0 || Long.compareUnsigned(s, lastSeq) > 0))
            {
                between++;
            }
        }
        forgottenLen = kept;
        if (lastSeq >= 0)
        {
            dropsGap += Math.max(0, seq - lastSeq - 1 - between);
        }
        lastSeq = seq;
    }

    /** A descriptor its slot contradicted: no state changes, but it arrived (no gap). */
    private void forget(final long seq)
    {
        if (lastSeq >= 0 && Long.compareUnsigned(seq, lastSeq) <= 0)
        {
            return;
        }
        for (int i = 0; i < forgottenLen; i++)
        {
            if (forgotten[i] == seq)
            {
                return;
            }
        }
        if (forgottenLen < forgotten.length)
        {
            forgotten[forgottenLen++] = seq;
        }
        else
        {
            int largest = 0;
            for (int i = 1; i < forgottenLen; i++)
            {
                if (Long.compareUnsigned(forgotten[i], forgotten[largest]) > 0)
                {
                    largest = i;
                }
            }
            if (Long.compareUnsigned(seq, forgotten[largest]) < 0)
            {
                forgotten[largest] = seq;
            }
        }
    }
}
