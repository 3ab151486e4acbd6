package io.tensorpool.examples;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import shm.tensorpool.control.ShmPoolAnnounceDecoder;
import shm.tensorpool.driver.ShmAttachResponseDecoder;

/**
 * Where a stream epoch's memory is, from an attach response (Driver Model §4.3) or a pool
 * announce (Wire Spec §10.1.1), checked as the Rust clients check a grant: required
 * fields present, 256-byte header slots, a power-of-two ring, every pool with as many
 * slots as the ring and a power-of-two stride of at least 64, at least one pool, and
 * region URIs of the {@code shm:file?path=...} form (Wire Spec §15.22). Pools are kept
 * smallest stride first: the producer picks the first that fits.
 */
final class Layout
{
    /** Wire Spec §8.1: header slots are exactly 256 bytes. */
    static final int HEADER_SLOT_BYTES = 256;

    final long leaseId;
    final long streamId;
    final long epoch;
    final long layoutVersion;
    final int headerNslots;
    final String headerPath;
    final List<Pool> pools;
    /** CLOCK_MONOTONIC deadline of the lease, or -1 when the driver gave none. */
    final long leaseExpiryNs;

    /** One payload pool. */
    static final class Pool
    {
        final int poolId;
        final int nslots;
        final int strideBytes;
        final String path;

        Pool(final int poolId, final long nslots, final long strideBytes, final String uri)
        {
            if (nslots > Integer.MAX_VALUE || strideBytes > (1L << 30) ||
                strideBytes < 64 || Long.bitCount(strideBytes) != 1)
            {
                throw new InvalidLayout("pool " + poolId + ": stride " + strideBytes +
                    " is not a power-of-two multiple of 64 (or too large for this example)");
            }
            this.poolId = poolId;
            this.nslots = (int)nslots;
            this.strideBytes = (int)strideBytes;
            this.path = regionPath(uri);
        }
    }

    private Layout(
        final long leaseId, final long streamId, final long epoch, final long layoutVersion,
        final long headerNslots, final int headerSlotBytes, final String headerUri,
        final List<Pool> pools, final long leaseExpiryNs)
    {
        if (headerSlotBytes != HEADER_SLOT_BYTES)
        {
            throw new InvalidLayout("headerSlotBytes " + headerSlotBytes + " is not 256");
        }
        if (headerNslots <= 0 || headerNslots > (1 << 30) || Long.bitCount(headerNslots) != 1)
        {
            throw new InvalidLayout("headerNslots " + headerNslots + " is not a power of two");
        }
        if (pools.isEmpty())
        {
            throw new InvalidLayout("no payload pools");
        }
        for (final Pool p : pools)
        {
            if (p.nslots != headerNslots)
            {
                throw new InvalidLayout("pool " + p.poolId + " has " + p.nslots +
                    " slots, the header ring " + headerNslots);
            }
        }
        pools.sort(Comparator.comparingInt(p -> p.strideBytes));
        this.leaseId = leaseId;
        this.streamId = streamId;
        this.epoch = epoch;
        this.layoutVersion = layoutVersion;
        this.headerNslots = (int)headerNslots;
        this.headerPath = regionPath(headerUri);
        this.pools = pools;
        this.leaseExpiryNs = leaseExpiryNs;
    }

    /** This layout under another lease id (a consumer's lease survives epoch changes). */
    Layout withLease(final long otherLeaseId)
    {
        return new Layout(this, otherLeaseId);
    }

    private Layout(final Layout other, final long leaseId)
    {
        this.leaseId = leaseId;
        this.streamId = other.streamId;
        this.epoch = other.epoch;
        this.layoutVersion = other.layoutVersion;
        this.headerNslots = other.headerNslots;
        this.headerPath = other.headerPath;
        this.pools = other.pools;
        this.leaseExpiryNs = other.leaseExpiryNs;
    }

    /** The grant of an OK attach response (its var data and groups read in schema order). */
    static Layout fromResponse(final ShmAttachResponseDecoder r)
    {
        final long leaseId = required(r.leaseId(), ShmAttachResponseDecoder.leaseIdNullValue(), "leaseId");
        final long streamId = required(r.streamId(), ShmAttachResponseDecoder.streamIdNullValue(), "streamId");
        final long epoch = required(r.epoch(), ShmAttachResponseDecoder.epochNullValue(), "epoch");
        final long layoutVersion = required(
            r.layoutVersion(), ShmAttachResponseDecoder.layoutVersionNullValue(), "layoutVersion");
        final long nslots = required(r.headerNslots(), ShmAttachResponseDecoder.headerNslotsNullValue(), "headerNslots");
        final int slotBytes = (int)required(
            r.headerSlotBytes(), ShmAttachResponseDecoder.headerSlotBytesNullValue(), "headerSlotBytes");
        final long expiry = r.leaseExpiryTimestampNs() == ShmAttachResponseDecoder.leaseExpiryTimestampNsNullValue() ?
            -1 : r.leaseExpiryTimestampNs();
        final List<Pool> pools = new ArrayList<>();
        for (final ShmAttachResponseDecoder.PayloadPoolsDecoder p : r.payloadPools())
        {
            final int poolId = p.poolId();
            final long poolNslots = p.poolNslots();
            final long stride = p.strideBytes();
            pools.add(new Pool(poolId, poolNslots, stride, p.regionUri()));
        }
        final String headerUri = r.headerRegionUri();
        return new Layout(leaseId, streamId, epoch, layoutVersion, nslots, slotBytes, headerUri, pools, expiry);
    }

    /** The layout an announce names, under the consumer's existing lease. */
    static Layout fromAnnounce(final ShmPoolAnnounceDecoder a, final long leaseId)
    {
        final long streamId = a.streamId();
        final long epoch = a.epoch();
        final long layoutVersion = a.layoutVersion();
        final long nslots = a.headerNslots();
        final int slotBytes = a.headerSlotBytes();
        final List<Pool> pools = new ArrayList<>();
        for (final ShmPoolAnnounceDecoder.PayloadPoolsDecoder p : a.payloadPools())
        {
            final int poolId = p.poolId();
            final long poolNslots = p.poolNslots();
            final long stride = p.strideBytes();
            pools.add(new Pool(poolId, poolNslots, stride, p.regionUri()));
        }
        final String headerUri = a.headerRegionUri();
        return new Layout(leaseId, streamId, epoch, layoutVersion, nslots, slotBytes, headerUri, pools, -1);
    }

    private static long required(final long value, final long nullValue, final String field)
    {
        if (value == nullValue)
        {
            throw new InvalidLayout("OK attach response without " + field);
        }
        return value;
    }

    /**
     * The path of a region URI: {@code shm:file?path=ABS[|require_hugepages=true|false]},
     * the path visible ASCII without '?', '|' or space (Wire Spec §15.22).
     */
    static String regionPath(final String uri)
    {
        if (!uri.startsWith("shm:file?"))
        {
            throw new InvalidLayout("unsupported region URI " + uri);
        }
        String path = null;
        boolean hugepagesSeen = false;
        for (final String param : uri.substring("shm:file?".length()).split("\\|", -1))
        {
            if (param.startsWith("path=") && path == null)
            {
                path = param.substring("path=".length());
            }
            else if ((param.equals("require_hugepages=true") || param.equals("require_hugepages=false")) &&
                !hugepagesSeen)
            {
                hugepagesSeen = true;
            }
            else
            {
                throw new InvalidLayout("region URI " + uri + ": unknown or repeated parameter " + param);
            }
        }
        if (path == null || !path.startsWith("/"))
        {
            throw new InvalidLayout("region URI " + uri + " has no absolute path");
        }
        for (int i = 0; i < path.length(); i++)
        {
            final char c = path.charAt(i);
            if (c <= ' ' || c > '~' || c == '?' || c == '|')
            {
                throw new InvalidLayout("region URI path " + path + " has a forbidden character at " + i);
            }
        }
        return path;
    }

    /** A grant or announce that must not be mapped. */
    static final class InvalidLayout extends RuntimeException
    {
        private static final long serialVersionUID = 1L;

        InvalidLayout(final String message)
        {
            super(message);
        }
    }
}
