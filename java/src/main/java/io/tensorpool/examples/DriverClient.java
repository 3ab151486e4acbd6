package io.tensorpool.examples;

import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Subscription;
import io.aeron.logbuffer.FragmentHandler;
import java.util.concurrent.ThreadLocalRandom;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import shm.tensorpool.driver.HugepagesPolicy;
import shm.tensorpool.driver.MessageHeaderDecoder;
import shm.tensorpool.driver.MessageHeaderEncoder;
import shm.tensorpool.driver.PublishMode;
import shm.tensorpool.driver.ResponseCode;
import shm.tensorpool.driver.Role;
import shm.tensorpool.driver.ShmAttachRequestEncoder;
import shm.tensorpool.driver.ShmAttachResponseDecoder;
import shm.tensorpool.driver.ShmDetachRequestEncoder;
import shm.tensorpool.driver.ShmDetachResponseDecoder;
import shm.tensorpool.driver.ShmDriverShutdownDecoder;
import shm.tensorpool.driver.ShmLeaseKeepaliveEncoder;
import shm.tensorpool.driver.ShmLeaseRevokedDecoder;

/**
 * A client's lease with the SHM driver over Aeron (Driver Model §4): attach (retried with
 * backoff, a new random client id if the driver says the id is taken), keepalives at a
 * third of the granted lease, reattach when the lease is revoked, lost or the driver shuts
 * down, detach on close. Driven by {@link #doWork}, like the Rust agents.
 *
 * The control stream is published on an exclusive publication, as the Rust clients do:
 * Aeron compares a new publication's channel parameters (term-length, mtu, ...) with an
 * existing publication of the same channel and stream only for shared publications, so
 * an exclusive one joins the driver's stream whatever term-length the driver, or another
 * client, configured (docs/DESIGN.md, "Channel parameters").
 *
 * Every message on the control and announce streams is dispatched on (schema id,
 * template id): schemas 901 and 900 reuse template ids (docs/DESIGN.md, "Foreign SBE
 * users"). Schema 901 messages are handled here; schema 900 messages (announces) go to
 * the {@link Listener}.
 */
final class DriverClient implements AutoCloseable
{
    /** What the producer or consumer learns from the session. */
    interface Listener
    {
        /** A lease was granted (first attach or a reattach); false if it cannot be used
         * (its regions do not map), which restarts the session after a backoff. */
        boolean onAttached(Layout grant);

        /** The lease ended (revoked, lost, driver shutdown): unmap; a reattach follows. */
        void onLeaseEnded(String why);

        /** A schema-900 message from the control or announce stream. */
        void onControlMessage(DirectBuffer buffer, int offset, int length, int templateId, int version);
    }

    /** Rust `CLIENT_ID_ALREADY_ATTACHED`: the driver's words for a taken client id. */
    static final String CLIENT_ID_ALREADY_ATTACHED = "client_id already attached";
    private static final long ATTACH_TIMEOUT_NS = 1_000_000_000L;
    private static final long BACKOFF_NS = 200_000_000L;
    private static final long MIN_KEEPALIVE_NS = 1_000_000L;
    private static final long UNBOUNDED_LEASE_KEEPALIVE_NS = 1_000_000_000L;

    private enum State
    {
        UNATTACHED, ATTACHING, ATTACHED, CLOSED
    }

    final Aeron aeron;
    private final ExclusivePublication control;
    private final Subscription controlIn;
    private final Subscription announceIn;
    private final FragmentAssembler controlAssembler;
    private final FragmentAssembler announceAssembler;
    private final Listener listener;
    private final Role role;
    private final long requestedStreamId;
    private final PublishMode publishMode;
    private final long keepaliveBoundNs;
    private final boolean autoClientId;

    private final UnsafeBuffer out = new UnsafeBuffer(new byte[256]);
    private final MessageHeaderEncoder headerOut = new MessageHeaderEncoder();
    private final MessageHeaderDecoder headerIn = new MessageHeaderDecoder();
    private final ShmAttachRequestEncoder attachOut = new ShmAttachRequestEncoder();
    private final ShmLeaseKeepaliveEncoder keepaliveOut = new ShmLeaseKeepaliveEncoder();
    private final ShmDetachRequestEncoder detachOut = new ShmDetachRequestEncoder();
    private final ShmAttachResponseDecoder responseIn = new ShmAttachResponseDecoder();
    private final ShmLeaseRevokedDecoder revokedIn = new ShmLeaseRevokedDecoder();
    private final ShmDriverShutdownDecoder shutdownIn = new ShmDriverShutdownDecoder();
    private final ShmDetachResponseDecoder detachIn = new ShmDetachResponseDecoder();

    private State state = State.UNATTACHED;
    private long clientId;
    private long nextCorrelationId = ThreadLocalRandom.current().nextLong(1L << 40, 1L << 62);
    private long correlationId;
    /** Correlation ids of this client's recent attach attempts: a driver busy provisioning
     * may answer one after the client gave up on it and asked again, and a granted lease
     * must then be taken, not left to expire while the retry is refused. */
    private final long[] attempts = new long[8];
    private int attemptCount;
    private long deadlineNs;
    private long nextAttemptNs;
    private Layout grant;
    private long keepalivePeriodNs;
    private long nextKeepaliveNs;
    private long leaseNs = -1;
    private long hardExpiryNs = Long.MAX_VALUE;
    private boolean detachAnswered;
    private long now;
    private String lastRefusal;

    DriverClient(
        final String aeronDir, final String channel, final int controlStreamId, final int announceStreamId,
        final Role role, final long streamId, final long clientId, final PublishMode publishMode,
        final long keepaliveBoundNs, final long timeoutNs, final Listener listener)
    {
        this.aeron = connect(aeronDir, timeoutNs);
        try
        {
            this.control = aeron.addExclusivePublication(channel, controlStreamId);
            this.controlIn = aeron.addSubscription(channel, controlStreamId);
            this.announceIn = announceStreamId == controlStreamId ? null :
                aeron.addSubscription(channel, announceStreamId);
        }
        catch (final RuntimeException e)
        {
            aeron.close();
            throw new IllegalStateException(
                "joining the control streams on " + channel + " failed: " + e.getMessage(), e);
        }
        final FragmentHandler handler = this::onFragment;
        this.controlAssembler = new FragmentAssembler(handler);
        this.announceAssembler = new FragmentAssembler(handler);
        this.listener = listener;
        this.role = role;
        this.requestedStreamId = streamId;
        this.publishMode = publishMode;
        this.keepaliveBoundNs = keepaliveBoundNs;
        this.autoClientId = clientId == 0;
        this.clientId = autoClientId ? randomClientId() : clientId;
    }

    /** Connects to the media driver, retrying until it answers or the timeout passes. */
    private static Aeron connect(final String aeronDir, final long timeoutNs)
    {
        final long deadline = System.nanoTime() + timeoutNs;
        while (true)
        {
            try
            {
                return Aeron.connect(new Aeron.Context()
                    .aeronDirectoryName(aeronDir)
                    .driverTimeoutMs(Math.max(1_000, Math.min(10_000, timeoutNs / 1_000_000))));
            }
            catch (final RuntimeException e)
            {
                if (System.nanoTime() >= deadline || Common.interrupted() != 0)
                {
                    throw new IllegalStateException("no media driver in time: " + e.getMessage(), e);
                }
                java.util.concurrent.locks.LockSupport.parkNanos(200_000_000L);
            }
        }
    }

    private static long randomClientId()
    {
        return ThreadLocalRandom.current().nextLong(1, 0x1_0000_0000L);
    }

    long clientId()
    {
        return clientId;
    }

    boolean isAttached()
    {
        return state == State.ATTACHED;
    }

    Layout grant()
    {
        return grant;
    }

    /** The driver's words for the last attach it refused ("REJECTED stream not
     * provisioned", ...), null if none was refused: a final message keeps the reason. */
    String lastRefusal()
    {
        return lastRefusal;
    }

    /** Polls the control (and announce) stream and runs the session's timers. */
    int doWork(final long nowNs)
    {
        now = nowNs;
        int work = controlIn.poll(controlAssembler, 16);
        if (announceIn != null)
        {
            work += announceIn.poll(announceAssembler, 16);
        }
        switch (state)
        {
            case UNATTACHED:
                if (nowNs >= nextAttemptNs)
                {
                    correlationId = nextCorrelationId++;
                    attempts[attemptCount++ % attempts.length] = correlationId;
                    if (sendAttach())
                    {
                        state = State.ATTACHING;
                        deadlineNs = nowNs + ATTACH_TIMEOUT_NS;
                        work++;
                    }
                }
                break;
            case ATTACHING:
                if (nowNs >= deadlineNs)
                {
                    backOff();
                }
                break;
            case ATTACHED:
                if (nowNs >= hardExpiryNs)
                {
                    endLease("lease expired before a keepalive was sent");
                }
                else if (nowNs >= nextKeepaliveNs && sendKeepalive())
                {
                    nextKeepaliveNs = nowNs + keepalivePeriodNs;
                    if (leaseNs >= 0)
                    {
                        hardExpiryNs = nowNs + leaseNs;
                    }
                    work++;
                }
                break;
            default:
                break;
        }
        return work;
    }

    /** Ends the session: a detach, answered or not within a second. */
    @Override
    public void close()
    {
        if (state == State.ATTACHED)
        {
            correlationId = nextCorrelationId++;
            final int len = detachOut.wrapAndApplyHeader(out, 0, headerOut)
                .correlationId(correlationId)
                .leaseId(grant.leaseId)
                .streamId(grant.streamId)
                .clientId(clientId)
                .role(role)
                .encodedLength() + MessageHeaderEncoder.ENCODED_LENGTH;
            final long deadline = System.nanoTime() + 1_000_000_000L;
            boolean sent = false;
            while (!sent && System.nanoTime() < deadline)
            {
                sent = control.offer(out, 0, len) > 0;
            }
            state = State.CLOSED;
            while (sent && !detachAnswered && System.nanoTime() < deadline)
            {
                if (controlIn.poll(controlAssembler, 16) == 0)
                {
                    java.util.concurrent.locks.LockSupport.parkNanos(1_000_000L);
                }
            }
        }
        state = State.CLOSED;
        aeron.close();
    }

    /** Drops the lease (the caller could not use it) and attaches again after a backoff. */
    void restart()
    {
        grant = null;
        backOff();
    }

    private boolean sendAttach()
    {
        final int len = attachOut.wrapAndApplyHeader(out, 0, headerOut)
            .correlationId(correlationId)
            .streamId(requestedStreamId)
            .clientId(clientId)
            .role(role)
            .expectedLayoutVersion(0)
            .publishMode(publishMode)
            .requireHugepages(HugepagesPolicy.UNSPECIFIED)
            .desiredNodeId(ShmAttachRequestEncoder.desiredNodeIdNullValue())
            .encodedLength() + MessageHeaderEncoder.ENCODED_LENGTH;
        return control.offer(out, 0, len) > 0;
    }

    private boolean sendKeepalive()
    {
        final int len = keepaliveOut.wrapAndApplyHeader(out, 0, headerOut)
            .leaseId(grant.leaseId)
            .streamId(grant.streamId)
            .clientId(clientId)
            .role(role)
            .clientTimestampNs(now)
            .encodedLength() + MessageHeaderEncoder.ENCODED_LENGTH;
        return control.offer(out, 0, len) > 0;
    }

    private void backOff()
    {
        if (state != State.CLOSED)
        {
            state = State.UNATTACHED;
            nextAttemptNs = now + BACKOFF_NS;
        }
    }

    private void endLease(final String why)
    {
        grant = null;
        state = State.UNATTACHED;
        nextAttemptNs = now;
        listener.onLeaseEnded(why);
    }

    private void onFragment(final DirectBuffer buffer, final int offset, final int length, final io.aeron.logbuffer.Header h)
    {
        if (length < MessageHeaderDecoder.ENCODED_LENGTH)
        {
            return;
        }
        headerIn.wrap(buffer, offset);
        final int schemaId = headerIn.schemaId();
        final int templateId = headerIn.templateId();
        final int version = headerIn.version();
        if (schemaId == shm.tensorpool.control.MessageHeaderDecoder.SCHEMA_ID)
        {
            listener.onControlMessage(buffer, offset, length, templateId, version);
            return;
        }
        if (schemaId != MessageHeaderDecoder.SCHEMA_ID || version > MessageHeaderDecoder.SCHEMA_VERSION)
        {
            return;
        }
        final int body = offset + MessageHeaderDecoder.ENCODED_LENGTH;
        final int blockLength = headerIn.blockLength();
        try
        {
            switch (templateId)
            {
                case ShmAttachResponseDecoder.TEMPLATE_ID:
                    if (blockLength >= ShmAttachResponseDecoder.BLOCK_LENGTH)
                    {
                        onAttachResponse(responseIn.wrap(buffer, body, blockLength, version));
                    }
                    break;
                case ShmLeaseRevokedDecoder.TEMPLATE_ID:
                    if (blockLength >= ShmLeaseRevokedDecoder.BLOCK_LENGTH)
                    {
                        revokedIn.wrap(buffer, body, blockLength, version);
                        if (state == State.ATTACHED && revokedIn.leaseId() == grant.leaseId &&
                            revokedIn.role() == role)
                        {
                            endLease("lease revoked (" + revokedIn.reason() + ")");
                        }
                    }
                    break;
                case ShmDriverShutdownDecoder.TEMPLATE_ID:
                    if (blockLength >= ShmDriverShutdownDecoder.BLOCK_LENGTH && state == State.ATTACHED)
                    {
                        shutdownIn.wrap(buffer, body, blockLength, version);
                        endLease("driver shut down (" + shutdownIn.reason() + ")");
                    }
                    break;
                case ShmDetachResponseDecoder.TEMPLATE_ID:
                    if (blockLength >= ShmDetachResponseDecoder.BLOCK_LENGTH)
                    {
                        detachIn.wrap(buffer, body, blockLength, version);
                        if (state == State.CLOSED && detachIn.correlationId() == correlationId)
                        {
                            detachAnswered = true;
                        }
                    }
                    break;
                default:
                    break; // requests of other clients
            }
        }
        catch (final IndexOutOfBoundsException e)
        {
            System.err.println("driver client: malformed message (template " + templateId + "): " + e.getMessage());
        }
    }

    private void onAttachResponse(final ShmAttachResponseDecoder r)
    {
        // Other clients' responses share the stream: only ours counts (Appendix B.1).
        final long id = r.correlationId();
        boolean ours = false;
        for (int i = 0; i < Math.min(attemptCount, attempts.length); i++)
        {
            ours |= attempts[i] == id;
        }
        if (!ours || state == State.ATTACHED || state == State.CLOSED)
        {
            return;
        }
        if (r.code() != ResponseCode.OK)
        {
            if (state != State.ATTACHING || id != correlationId)
            {
                return; // the refusal of an attempt already given up
            }
            // Groups and var data are read in order to reach the error message.
            for (final ShmAttachResponseDecoder.PayloadPoolsDecoder p : r.payloadPools())
            {
                p.skipRegionUri();
            }
            r.skipHeaderRegionUri();
            final String message = r.errorMessage();
            lastRefusal = r.code() + " " + message;
            System.err.println("driver client: attach refused: " + lastRefusal);
            if (autoClientId && CLIENT_ID_ALREADY_ATTACHED.equals(message))
            {
                clientId = randomClientId();
            }
            backOff();
            return;
        }
        final Layout layout;
        try
        {
            layout = Layout.fromResponse(r);
        }
        catch (final Layout.InvalidLayout e)
        {
            System.err.println("driver client: invalid attach response: " + e.getMessage());
            backOff();
            return;
        }
        grant = layout;
        state = State.ATTACHED;
        if (layout.leaseExpiryNs >= 0)
        {
            leaseNs = Math.max(0, layout.leaseExpiryNs - now);
            keepalivePeriodNs = leaseNs / 3;
            if (keepaliveBoundNs > 0)
            {
                keepalivePeriodNs = Math.min(keepalivePeriodNs, keepaliveBoundNs);
            }
            hardExpiryNs = layout.leaseExpiryNs;
        }
        else
        {
            leaseNs = -1;
            keepalivePeriodNs = keepaliveBoundNs > 0 ? keepaliveBoundNs : UNBOUNDED_LEASE_KEEPALIVE_NS;
            hardExpiryNs = Long.MAX_VALUE;
        }
        keepalivePeriodNs = Math.max(keepalivePeriodNs, MIN_KEEPALIVE_NS);
        nextKeepaliveNs = now + keepalivePeriodNs;
        if (!listener.onAttached(layout))
        {
            restart();
        }
    }
}
