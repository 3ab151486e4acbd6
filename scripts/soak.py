#!/usr/bin/env python3
"""Soak under chaos: tp-driver, the example producer and several verifying consumers run
while a chaos loop kills (SIGKILL) and restarts them at random. Run through scripts/soak.sh.

Fails on: a corrupt frame accepted (a consumer's verify_failures), a lease id granted twice
or an epoch of a stream started twice (from the driver's logs, across every restart), a
driver that stops serving, or resources that grow and do not come back (driver fds,
mappings, RSS and the files under the SHM base directory, compared in the same steady
state, all clients attached, at the start and at the end). In the last third only clients
are killed, so the final driver lives through client churn before it is measured.

Also measures each driver restart: from spawn to serving, and from serving to the
producer and every live consumer attached again.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ATTACH = re.compile(
    r"attach ok .*?lease_id=(\d+) stream_id=(\d+) client_id=(\d+) role=(\w+) epoch=(\d+)")
EPOCH = re.compile(r"epoch started stream_id=(\d+) epoch=(\d+)")
ENDED = re.compile(r"lease ended lease_id=(\d+)")
STREAM = 10000


def config_toml(aeron_dir, shm_dir):
    return f"""
[driver]
instance_id = "tp-soak"
media_driver = "embedded"
aeron_dir = "{aeron_dir}"
control_channel = "aeron:ipc?term-length=4m"
control_stream_id = 1000
announce_channel = "aeron:ipc?term-length=4m"
announce_stream_id = 1001
qos_channel = "aeron:ipc?term-length=4m"
qos_stream_id = 1200
stream_id_range = "20000-29999"
descriptor_stream_id_range = "31000-31999"
control_stream_id_range = "32000-32999"
[shm]
base_dir = "{shm_dir}"
namespace = "soak"
[policies]
announce_period_ms = 200
lease_keepalive_interval_ms = 200
lease_expiry_grace_intervals = 3
prefault_shm = false
epoch_gc_enabled = true
epoch_gc_keep = 2
shutdown_token = "soak"
[profiles.default]
header_nslots = 64
payload_pools = [{{ pool_id = 1, stride_bytes = 4096 }}, {{ pool_id = 2, stride_bytes = 65536 }}]
[streams.default]
stream_id = {STREAM}
profile = "default"
"""


class Proc:
    """One incarnation of a role, its output in files under the log directory."""

    def __init__(self, role, index, argv, logs, env):
        self.role, self.index = role, index
        self.stdout = os.path.join(logs, f"{role}-{index}.stdout")
        self.stderr = os.path.join(logs, f"{role}-{index}.stderr")
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                          env=env)
        self.started = time.monotonic()
        self.killed = False

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def kill(self):
        self.killed = True
        self.signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout=10):
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def last_json(self):
        try:
            lines = open(self.stdout, errors="replace").read().splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            try:
                return json.loads(line)
            except ValueError:
                continue
        return None

    def err_text(self):
        try:
            return open(self.stderr, errors="replace").read()
        except OSError:
            return ""


def resources(pid, shm_dir):
    def count(path):
        try:
            return len(os.listdir(path))
        except OSError:
            return -1
    rss_kib = -1
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    except OSError:
        pass
    try:
        maps = sum(1 for _ in open(f"/proc/{pid}/maps"))
    except OSError:
        maps = -1
    files, blocks_bytes, epochs = 0, 0, 0
    for root, dirs, names in os.walk(shm_dir):
        files += len(names)
        for name in names:
            try:
                blocks_bytes += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
        if os.path.basename(os.path.dirname(root)) == str(STREAM):
            epochs += 1
    return {"rss_kib": rss_kib, "fds": count(f"/proc/{pid}/fd"), "maps": maps,
            "shm_files": files, "shm_bytes": blocks_bytes, "epoch_dirs": epochs}


class Soak:
    def __init__(self, args, root):
        self.args, self.root = args, root
        self.work = tempfile.mkdtemp(prefix="tp-soak-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.aeron = os.path.join(self.work, "aeron")
        self.shm = os.path.join(self.work, "shm")
        os.makedirs(self.shm)
        self.logs = args.logs
        os.makedirs(self.logs, exist_ok=True)
        self.config = os.path.join(self.logs, "driver.toml")
        open(self.config, "w").write(config_toml(self.aeron, self.shm))
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("DRIVER_", "SHM_", "POLICIES_", "AERON_"))}
        self.env.update(RUST_LOG="info", NO_COLOR="1")
        self.bin = os.path.join(root, "target", "release")
        self.counts = {"driver": 0, "producer": 0, "consumer": 0}
        self.driver = None
        self.producer = None
        self.consumers = [None] * args.consumers
        self.finished = []          # every client incarnation, for its last JSON line
        self.kills = {"driver": 0, "producer": 0, "consumer": 0}
        self.unexpected_exits = []
        self.lease_ids = set()
        self.failures = []
        self.epochs = []            # (stream, epoch) in the order the drivers started them
        self.log_offsets = {}
        self.incarnation_leases = 0
        self.restarts = []          # per driver kill: serving_s, reattached_s
        self.samples = []

    # -- processes ---------------------------------------------------------------------

    def spawn(self, role, argv):
        self.counts[role] += 1
        return Proc(role, self.counts[role], argv, self.logs, self.env)

    def spawn_driver(self):
        self.driver = self.spawn("driver", [os.path.join(self.bin, "tp-driver"), "--config", self.config])
        self.incarnation_leases = 0
        deadline = time.monotonic() + 30
        while "tp-driver running" not in self.driver.err_text():
            if not self.driver.alive():
                self.fail(f"driver exited during start-up:\n{self.driver.err_text()[-2000:]}")
                return None
            if time.monotonic() > deadline:
                self.fail("driver did not serve within 30 s")
                return None
            time.sleep(0.01)
        return time.monotonic() - self.driver.started

    def client_args(self):
        return ["--aeron-dir", self.aeron, "--stream-id", str(STREAM),
                "--allowed-base-dir", self.shm]

    def spawn_producer(self):
        self.producer = self.spawn("producer", [
            os.path.join(self.bin, "examples", "producer"), *self.client_args(),
            "--frames", str(10**15), "--payload-bytes", str(self.args.payload_bytes),
            "--rate", str(self.args.rate), "--timeout-s", str(10**9)])
        self.finished.append(self.producer)

    def spawn_consumer(self, i):
        self.consumers[i] = self.spawn("consumer", [
            os.path.join(self.bin, "examples", "consumer"), *self.client_args(),
            "--frames", str(10**15), "--verify", "--timeout-s", str(10**9),
            "--announce-period-ms", "200", "--progress-ms", "500"])
        self.finished.append(self.consumers[i])

    def fail(self, message):
        print(f"FAIL: {message}", flush=True)
        self.failures.append(message)

    # -- the driver's log --------------------------------------------------------------

    def scan_driver_log(self):
        """Checks new lines of the current driver's log; returns roles attached."""
        roles = []
        path = self.driver.stderr
        offset = self.log_offsets.get(path, 0)
        try:
            with open(path, errors="replace") as f:
                f.seek(offset)
                text = f.read()
        except OSError:
            return roles
        complete = text.rfind("\n") + 1
        self.log_offsets[path] = offset + len(text[:complete].encode())
        for line in text[:complete].splitlines():
            m = ATTACH.search(line)
            if m:
                lease = int(m.group(1))
                if lease in self.lease_ids:
                    self.fail(f"lease id {lease} granted twice: {line}")
                self.lease_ids.add(lease)
                self.incarnation_leases += 1
                roles.append(m.group(4).lower())
                continue
            m = EPOCH.search(line)
            if m:
                stream, epoch = int(m.group(1)), int(m.group(2))
                used = [e for s, e in self.epochs if s == stream]
                if used and epoch <= max(used):
                    self.fail(f"stream {stream} epoch {epoch} started after {max(used)}")
                self.epochs.append((stream, epoch))
                continue
            if ENDED.search(line):
                self.incarnation_leases -= 1
        return roles

    # -- chaos ---------------------------------------------------------------------------

    def restart_dead(self):
        if not self.driver.alive():
            self.fail(f"the driver died on its own:\n{self.driver.err_text()[-2000:]}")
            self.spawn_driver()
        if not self.producer.alive():
            if not self.producer.killed:
                self.unexpected_exits.append(("producer", self.producer.index, self.producer.popen.returncode))
            self.spawn_producer()
        for i, c in enumerate(self.consumers):
            if not c.alive():
                if not c.killed:
                    self.unexpected_exits.append(("consumer", c.index, c.popen.returncode))
                self.spawn_consumer(i)

    def kill_driver(self):
        self.kills["driver"] += 1
        self.driver.kill()
        time.sleep(random.uniform(0, 0.3))
        serving = self.spawn_driver()
        if serving is None:
            return
        start = time.monotonic()
        want_consumers = len(self.consumers)
        seen = {"producer": 0, "consumer": 0}
        reattached = None
        while time.monotonic() - start < 20:
            for role in self.scan_driver_log():
                seen[role] = seen.get(role, 0) + 1
            if seen["producer"] >= 1 and seen["consumer"] >= want_consumers:
                reattached = time.monotonic() - start
                break
            time.sleep(0.01)
        if reattached is None:
            self.fail(f"clients did not reattach within 20 s of the driver serving (saw {seen})")
        self.restarts.append({"serving_s": round(serving, 3),
                              "reattached_s": None if reattached is None else round(reattached, 3)})
        print(f"driver restart: serving {serving:.3f} s after spawn, clients reattached "
              f"{reattached if reattached is None else round(reattached, 3)} s later", flush=True)

    def chaos_step(self, drivers_allowed):
        choice = random.random()
        if drivers_allowed and choice < 0.25:
            self.kill_driver()
        elif choice < 0.5:
            self.kills["producer"] += 1
            self.producer.kill()
            time.sleep(random.uniform(0, 1.0))
            self.spawn_producer()
        else:
            i = random.randrange(len(self.consumers))
            self.kills["consumer"] += 1
            self.consumers[i].kill()
            time.sleep(random.uniform(0, 1.0))
            self.spawn_consumer(i)

    def sample(self, phase):
        s = resources(self.driver.pid, self.shm)
        s.update(t=round(time.monotonic() - self.t0, 1), phase=phase,
                 driver=self.driver.index, leases=self.incarnation_leases)
        self.samples.append(s)
        print(json.dumps(s), flush=True)
        return s

    def steady(self, seconds):
        """Lets everything run untouched, then samples."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.scan_driver_log()
            self.restart_dead()
            time.sleep(0.1)

    # -- the run ---------------------------------------------------------------------------

    def run(self):
        self.t0 = time.monotonic()
        self.spawn_driver()
        self.spawn_producer()
        for i in range(len(self.consumers)):
            self.spawn_consumer(i)
        self.steady(5)
        baseline = self.sample("baseline")
        duration = self.args.minutes * 60
        client_only_from = self.t0 + duration * 2 / 3
        end = self.t0 + duration
        next_sample = time.monotonic() + 10
        while time.monotonic() < end and not self.failures:
            self.restart_dead()
            self.scan_driver_log()
            self.chaos_step(drivers_allowed=time.monotonic() < client_only_from)
            pause_end = time.monotonic() + random.uniform(1.0, 4.0)
            while time.monotonic() < pause_end:
                self.scan_driver_log()
                time.sleep(0.05)
            if time.monotonic() >= next_sample:
                self.sample("chaos")
                next_sample = time.monotonic() + 10
        self.restart_dead()
        self.steady(5)
        final = self.sample("final")
        self.check_growth(baseline, final)
        self.stop_all()
        return self.report(baseline, final)

    def check_growth(self, baseline, final):
        limits = {"fds": baseline["fds"] + 16, "maps": baseline["maps"] + 64,
                  "rss_kib": baseline["rss_kib"] * 2 + 32 * 1024,
                  "shm_bytes": baseline["shm_bytes"] * 3 + (1 << 20),
                  "epoch_dirs": baseline["epoch_dirs"] + 3}
        for key, limit in limits.items():
            if final[key] > limit:
                self.fail(f"{key} grew from {baseline[key]} to {final[key]} (limit {limit})")

    def stop_all(self):
        for c in [self.producer, *self.consumers]:
            c.stop()
        self.scan_driver_log()
        status = self.driver.stop()
        if status != 0:
            self.fail(f"the driver exited with {status} on SIGTERM")

    def report(self, baseline, final):
        consumers = [p for p in self.finished if p.role == "consumer"]
        lines = [p.last_json() or {} for p in consumers]
        received = sum(l.get("frames_received", 0) for l in lines)
        verified = sum(l.get("frames_verified", 0) for l in lines)
        corrupt = sum(l.get("verify_failures", 0) for l in lines)
        if corrupt:
            self.fail(f"{corrupt} corrupt frames accepted")
        sent = sum((p.last_json() or {}).get("frames_sent", 0)
                   for p in self.finished if p.role == "producer")
        serving = [r["serving_s"] for r in self.restarts]
        reattach = [r["reattached_s"] for r in self.restarts if r["reattached_s"] is not None]
        summary = {
            "minutes": self.args.minutes,
            "kills": self.kills,
            "incarnations": self.counts,
            "unexpected_exits": self.unexpected_exits,
            "frames_sent_reported": sent,
            "frames_accepted": received,
            "frames_verified": verified,
            "corrupt_frames_accepted": corrupt,
            "leases_granted": len(self.lease_ids),
            "epochs_started": len(self.epochs),
            "driver_restart_serving_s": {"max": max(serving, default=None),
                                         "mean": round(sum(serving) / len(serving), 3) if serving else None},
            "clients_reattached_s": {"max": max(reattach, default=None),
                                     "mean": round(sum(reattach) / len(reattach), 3) if reattach else None},
            "resources_start": baseline,
            "resources_end": final,
            "failures": self.failures,
        }
        open(os.path.join(self.logs, "summary.json"), "w").write(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))
        return not self.failures

    def cleanup(self):
        for p in [self.driver, self.producer, *self.consumers]:
            if p is not None and p.alive():
                p.kill()
        shutil.rmtree(self.work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--consumers", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--payload-bytes", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--logs", default=None, help="log directory (default target/soak/<time>)")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if args.logs is None:
        args.logs = os.path.join(root, "target", "soak", time.strftime("%Y%m%d-%H%M%S"))
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    random.seed(seed)
    print(f"soak: {args.minutes} min, {args.consumers} consumers, seed {seed}, logs {args.logs}",
          flush=True)
    soak = Soak(args, root)
    try:
        ok = soak.run()
    finally:
        soak.cleanup()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
