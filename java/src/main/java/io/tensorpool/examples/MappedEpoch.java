package io.tensorpool.examples;

import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import org.agrona.concurrent.UnsafeBuffer;
import shm.tensorpool.control.RegionType;
import shm.tensorpool.control.ShmRegionSuperblockDecoder;

/**
 * One epoch's header ring and payload pools, mapped with {@link MappedByteBuffer} and read
 * and written through Agrona {@link UnsafeBuffer}s. Before mapping, each file must lie
 * inside an allowed base directory with no symbolic link on the way, be a regular file
 * and be long enough; after mapping, its superblock must name exactly the region the
 * grant promised (Wire Spec §15.1, §15.21a.5). Only the driver creates or removes the
 * files; the mapping ends with the JVM's garbage collection of the buffers.
 */
final class MappedEpoch
{
    /** Wire Spec §6: the superblock is 64 bytes. */
    static final int SUPERBLOCK_SIZE = 64;
    /** Superblock magic: ASCII "TPOLSHM1" read as a little-endian u64 (Wire Spec §7.1). */
    static final long MAGIC = 0x544F504C53484D31L;

    final Layout layout;
    final UnsafeBuffer header;
    final List<UnsafeBuffer> pools = new ArrayList<>();

    MappedEpoch(final Layout layout, final List<Path> allowedBaseDirs, final boolean writable) throws IOException
    {
        this.layout = layout;
        this.header = map(layout.headerPath, allowedBaseDirs, writable,
            SUPERBLOCK_SIZE + (long)layout.headerNslots * Layout.HEADER_SLOT_BYTES);
        checkSuperblock(header, RegionType.HEADER_RING, 0, layout.headerNslots, Layout.HEADER_SLOT_BYTES, 0);
        for (final Layout.Pool pool : layout.pools)
        {
            final UnsafeBuffer buffer = map(pool.path, allowedBaseDirs, writable,
                SUPERBLOCK_SIZE + (long)pool.nslots * pool.strideBytes);
            checkSuperblock(buffer, RegionType.PAYLOAD_POOL, pool.poolId, pool.nslots, pool.strideBytes, pool.strideBytes);
            pools.add(buffer);
        }
    }

    /** Position of the pool with {@code poolId} in {@link #pools}, or -1. */
    int poolIndex(final int poolId)
    {
        for (int i = 0; i < layout.pools.size(); i++)
        {
            if (layout.pools.get(i).poolId == poolId)
            {
                return i;
            }
        }
        return -1;
    }

    /** Byte offset of header slot {@code index} (Wire Spec §8.1). */
    static int headerSlotOffset(final int index)
    {
        return SUPERBLOCK_SIZE + index * Layout.HEADER_SLOT_BYTES;
    }

    /** Byte offset of payload slot {@code slot} in a pool (Wire Spec §9). */
    static long payloadSlotOffset(final int slot, final int strideBytes)
    {
        return SUPERBLOCK_SIZE + (long)slot * strideBytes;
    }

    private static UnsafeBuffer map(
        final String pathText, final List<Path> allowedBaseDirs, final boolean writable, final long length)
        throws IOException
    {
        final Path path = Paths.get(pathText).normalize();
        if (!path.toString().equals(pathText))
        {
            throw new IOException(pathText + " is not in canonical form");
        }
        if (!Files.isRegularFile(path, LinkOption.NOFOLLOW_LINKS))
        {
            throw new IOException(pathText + " is not a regular file");
        }
        // A symbolic link anywhere on the path makes the real path differ.
        final Path real = path.toRealPath();
        if (!real.equals(path))
        {
            throw new IOException(pathText + " goes through a symbolic link (" + real + ")");
        }
        boolean inside = false;
        for (final Path base : allowedBaseDirs)
        {
            inside |= real.startsWith(base);
        }
        if (!inside)
        {
            throw new IOException(pathText + " is outside the allowed base directories " + allowedBaseDirs);
        }
        if (length > Integer.MAX_VALUE)
        {
            throw new IOException(pathText + ": " + length + " bytes is more than this example maps");
        }
        try (FileChannel channel = writable ?
            FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE) :
            FileChannel.open(path, StandardOpenOption.READ))
        {
            if (channel.size() < length)
            {
                throw new IOException(pathText + " is " + channel.size() + " bytes, the grant needs " + length);
            }
            final MappedByteBuffer mapped = channel.map(
                writable ? FileChannel.MapMode.READ_WRITE : FileChannel.MapMode.READ_ONLY, 0, length);
            return new UnsafeBuffer(mapped);
        }
    }

    private void checkSuperblock(
        final UnsafeBuffer buffer, final RegionType type, final int poolId, final int nslots,
        final int slotBytes, final int strideBytes) throws IOException
    {
        final ShmRegionSuperblockDecoder sb = new ShmRegionSuperblockDecoder().wrap(
            buffer, 0, ShmRegionSuperblockDecoder.BLOCK_LENGTH, ShmRegionSuperblockDecoder.SCHEMA_VERSION);
        if (sb.magic() != MAGIC)
        {
            throw new IOException("superblock magic " + Long.toHexString(sb.magic()) + " is not TPOLSHM1");
        }
        final long[][] checks = {
            {layout.layoutVersion, sb.layoutVersion()},
            {layout.epoch, sb.epoch()},
            {layout.streamId, sb.streamId()},
            {type.value(), sb.regionTypeRaw()},
            {poolId, sb.poolId()},
            {nslots, sb.nslots()},
            {slotBytes, sb.slotBytes()},
            {strideBytes, sb.strideBytes()},
        };
        final String[] names = {"layoutVersion", "epoch", "streamId", "regionType", "poolId", "nslots", "slotBytes",
            "strideBytes"};
        for (int i = 0; i < checks.length; i++)
        {
            if (checks[i][0] != checks[i][1])
            {
                throw new IOException("superblock " + names[i] + " is " + checks[i][1] + ", expected " + checks[i][0]);
            }
        }
    }
}
