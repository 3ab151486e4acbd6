package io.tensorpool.examples;

import io.aeron.Publication;
import io.aeron.logbuffer.Header;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import shm.tensorpool.control.DataSourceAnnounceDecoder;
import shm.tensorpool.control.DataSourceAnnounceEncoder;
import shm.tensorpool.control.DataSourceMetaDecoder;
import shm.tensorpool.control.DataSourceMetaEncoder;
import shm.tensorpool.control.MessageHeaderDecoder;
import shm.tensorpool.control.MessageHeaderEncoder;

/**
 * Per-data-source metadata of the Java examples (Wire Spec §10.3, §15.11), on the
 * metadata stream (1300 by convention): a {@link Publisher} for the producer, which sends
 * DataSourceAnnounce (name, summary, meta_version, epoch) followed by DataSourceMeta (the
 * attributes) on every change and every period, and a {@link Listener} for the consumer,
 * which pairs each announce with the meta of the same version that follows it (a meta
 * alone is taken too, with its name and summary from a later announce). The
 * bounds are the Rust library's (src/client/metadata): name 256, summary 1024, key and
 * format 1..128 printable ASCII bytes, value 16 KiB, 64 attributes, 64 KiB per message;
 * a message beyond them, or one that does not decode, is dropped and counted.
 */
final class Metadata
{
    static final int DEFAULT_STREAM_ID = 1300;
    static final int MAX_NAME_LEN = 256;
    static final int MAX_SUMMARY_LEN = 1024;
    static final int MAX_ATTRIBUTES = 64;
    static final int MAX_KEY_LEN = 128;
    static final int MAX_FORMAT_LEN = 128;
    static final int MAX_VALUE_LEN = 16 * 1024;
    static final int MAX_MESSAGE_LEN = 64 * 1024;

    private Metadata()
    {
    }

    /** One text/plain attribute, KEY=VALUE as the examples' --meta-attr gives it. */
    record Attribute(String key, String format, byte[] value)
    {
        static Attribute parse(final String keyValue)
        {
            final int eq = keyValue.indexOf('=');
            if (eq < 0)
            {
                throw new Cli.UsageException("--meta-attr " + keyValue + " is not KEY=VALUE");
            }
            return new Attribute(keyValue.substring(0, eq), "text/plain",
                keyValue.substring(eq + 1).getBytes(StandardCharsets.US_ASCII));
        }
    }

    /** "k=v;k2=<N bytes>": text/plain values as text, others by size. */
    static String attrsText(final List<Attribute> attributes)
    {
        final StringBuilder out = new StringBuilder();
        for (final Attribute a : attributes)
        {
            if (out.length() > 0)
            {
                out.append(';');
            }
            out.append(a.key()).append('=');
            if ("text/plain".equals(a.format()))
            {
                out.append(new String(a.value(), StandardCharsets.US_ASCII));
            }
            else
            {
                out.append('<').append(a.value().length).append(" bytes>");
            }
        }
        return out.toString();
    }

    /** {@code text} as a JSON string (metadata text is printable ASCII). */
    static String json(final String text)
    {
        return "\"" + text.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    private static boolean printable(final String text, final int max, final boolean mayBeEmpty)
    {
        if (text.length() > max || (text.isEmpty() && !mayBeEmpty))
        {
            return false;
        }
        for (int i = 0; i < text.length(); i++)
        {
            final char c = text.charAt(i);
            if (c < 0x20 || c > 0x7e)
            {
                return false;
            }
        }
        return true;
    }

    /** The producer side: the metadata in force, its version, the periodic re-announce. */
    static final class Publisher
    {
        private final Publication publication;
        private final long intervalNs;
        private final MessageHeaderEncoder headerOut = new MessageHeaderEncoder();
        private final DataSourceAnnounceEncoder announceOut = new DataSourceAnnounceEncoder();
        private final DataSourceMetaEncoder metaOut = new DataSourceMetaEncoder();
        private final UnsafeBuffer buffer = new UnsafeBuffer(new byte[MAX_MESSAGE_LEN]);
        private String name;
        private String summary;
        private List<Attribute> attributes = List.of();
        private long timestampNs;
        private int version;
        private long nextSendNs;

        Publisher(final Publication publication, final long intervalNs)
        {
            this.publication = publication;
            this.intervalNs = intervalNs;
        }

        /** Replaces the metadata: bumps the version and sends it on the next duty cycle. */
        int set(final String name, final String summary, final List<Attribute> attributes)
        {
            if (!printable(name, MAX_NAME_LEN, true) || !printable(summary, MAX_SUMMARY_LEN, true) ||
                attributes.size() > MAX_ATTRIBUTES)
            {
                throw new Cli.UsageException("metadata beyond the bounds (name 256, summary 1024, 64 attributes)");
            }
            for (final Attribute a : attributes)
            {
                if (!printable(a.key(), MAX_KEY_LEN, false) || !printable(a.format(), MAX_FORMAT_LEN, false) ||
                    a.value().length > MAX_VALUE_LEN)
                {
                    throw new Cli.UsageException("metadata attribute " + a.key() + " beyond the bounds");
                }
            }
            this.name = name;
            this.summary = summary;
            this.attributes = List.copyOf(attributes);
            this.timestampNs = System.currentTimeMillis() * 1_000_000L;
            version++;
            nextSendNs = 0;
            return version;
        }

        /** The version frames carry now (0: none set). */
        int version()
        {
            return version;
        }

        /** Sends announce + meta when due; returns the work done. */
        int doWork(final long nowNs, final long streamId, final long producerId, final long epoch)
        {
            if (version == 0 || nowNs < nextSendNs)
            {
                return 0;
            }
            int length = MessageHeaderEncoder.ENCODED_LENGTH + announceOut
                .wrapAndApplyHeader(buffer, 0, headerOut)
                .streamId(streamId)
                .producerId(producerId)
                .epoch(epoch)
                .metaVersion(version)
                .name(name)
                .summary(summary)
                .encodedLength();
            if (!sent(publication.offer(buffer, 0, length)))
            {
                return 1;
            }
            metaOut.wrapAndApplyHeader(buffer, 0, headerOut)
                .streamId(streamId)
                .metaVersion(version)
                .timestampNs(timestampNs);
            final DataSourceMetaEncoder.AttributesEncoder group = metaOut.attributesCount(attributes.size());
            for (final Attribute a : attributes)
            {
                group.next().key(a.key()).format(a.format()).putValue(a.value(), 0, a.value().length);
            }
            length = MessageHeaderEncoder.ENCODED_LENGTH + metaOut.encodedLength();
            if (sent(publication.offer(buffer, 0, length)))
            {
                nextSendNs = nowNs + intervalNs;
            }
            return 1;
        }

        /** Published, or nobody subscribes (a later subscriber gets the next period's). */
        private static boolean sent(final long result)
        {
            return result >= 0 || result == Publication.NOT_CONNECTED;
        }
    }

    /** The consumer side: the metadata of one stream as last received complete. */
    static final class Listener
    {
        private final MessageHeaderDecoder headerIn = new MessageHeaderDecoder();
        private final DataSourceAnnounceDecoder announceIn = new DataSourceAnnounceDecoder();
        private final DataSourceMetaDecoder metaIn = new DataSourceMetaDecoder();
        private long streamId;

        private boolean pending;
        private int pendingVersion;
        private long pendingEpoch;
        private String pendingName;
        private String pendingSummary;

        int version;
        long epoch = -1;
        String name = "";
        String summary = "";
        List<Attribute> attributes = List.of();
        long changes;
        long dropped;

        Listener(final long streamId)
        {
            this.streamId = streamId;
        }

        void streamId(final long streamId)
        {
            this.streamId = streamId;
        }

        /** A FragmentHandler for the metadata subscription. */
        void onMessage(final DirectBuffer buffer, final int offset, final int length, final Header header)
        {
            if (length < MessageHeaderDecoder.ENCODED_LENGTH + 4)
            {
                return;
            }
            headerIn.wrap(buffer, offset);
            final int template = headerIn.templateId();
            if (headerIn.schemaId() != DataSourceMetaDecoder.SCHEMA_ID ||
                (template != DataSourceAnnounceDecoder.TEMPLATE_ID && template != DataSourceMetaDecoder.TEMPLATE_ID))
            {
                return;
            }
            // Both messages start with the stream id.
            if ((buffer.getInt(offset + MessageHeaderDecoder.ENCODED_LENGTH, java.nio.ByteOrder.LITTLE_ENDIAN) &
                0xFFFF_FFFFL) != streamId)
            {
                return;
            }
            // Decoded from a copy of exactly this message, so a length that lies cannot
            // read past it (the copy's bounds checks throw instead).
            final UnsafeBuffer copy = new UnsafeBuffer(new byte[length]);
            copy.putBytes(0, buffer, offset, length);
            try
            {
                if (length > MAX_MESSAGE_LEN || headerIn.version() > DataSourceMetaDecoder.SCHEMA_VERSION ||
                    !(template == DataSourceAnnounceDecoder.TEMPLATE_ID ? onAnnounce(copy) : onMeta(copy)))
                {
                    dropped++;
                }
            }
            catch (final RuntimeException e)
            {
                dropped++;
            }
        }

        private boolean onAnnounce(final UnsafeBuffer buffer)
        {
            announceIn.wrapAndApplyHeader(buffer, 0, headerIn);
            final int v = (int)announceIn.metaVersion();
            final long e = announceIn.epoch();
            final String n = announceIn.name();
            final String s = announceIn.summary();
            if (!printable(n, MAX_NAME_LEN, true) || !printable(s, MAX_SUMMARY_LEN, true))
            {
                return false;
            }
            if (v == version && epoch == -1)
            {
                // The announce of a version taken from its meta alone: complete it.
                epoch = e;
                name = n;
                summary = s;
                changes++;
                report();
                return true;
            }
            pending = !(v == version && e == epoch && n.equals(name) && s.equals(summary));
            pendingVersion = v;
            pendingEpoch = e;
            pendingName = n;
            pendingSummary = s;
            return true;
        }

        private boolean onMeta(final UnsafeBuffer buffer)
        {
            metaIn.wrapAndApplyHeader(buffer, 0, headerIn);
            final int v = (int)metaIn.metaVersion();
            final DataSourceMetaDecoder.AttributesDecoder group = metaIn.attributes();
            if (group.count() > MAX_ATTRIBUTES)
            {
                return false;
            }
            final List<Attribute> read = new ArrayList<>();
            for (final DataSourceMetaDecoder.AttributesDecoder a : group)
            {
                final String key = a.key();
                final String format = a.format();
                final int valueLength = a.valueLength();
                if (!printable(key, MAX_KEY_LEN, false) || !printable(format, MAX_FORMAT_LEN, false) ||
                    valueLength > MAX_VALUE_LEN)
                {
                    return false;
                }
                final byte[] value = new byte[valueLength];
                a.getValue(value, 0, valueLength);
                read.add(new Attribute(key, format, value));
            }
            if (pending && v == pendingVersion)
            {
                pending = false;
                version = v;
                epoch = pendingEpoch;
                name = pendingName;
                summary = pendingSummary;
                attributes = read;
                changes++;
                report();
            }
            else if (v != version)
            {
                // A meta without its announce (joined between the two, or a producer that
                // sends metas only): taken; its announce completes it later.
                version = v;
                epoch = -1;
                name = "";
                summary = "";
                attributes = read;
                changes++;
                report();
            }
            return true;
        }

        private void report()
        {
            System.err.println("consumer: metadata version " + version + ": name \"" + name + "\", summary \"" +
                summary + "\", attributes [" + attrsText(attributes) + "]");
        }
    }
}
