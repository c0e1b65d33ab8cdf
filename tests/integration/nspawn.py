"""A real systemd (PID 1 of a `systemd-nspawn -b` container) for the
service tests. The container's root is an overlayfs whose lower layer is
this host's / and whose upper layer is a tmpfs, so the host's packages are
there and nothing the test does reaches the host. Commands run inside with
nsenter into the container's PID 1. Standard library only; needs root."""
import glob
import os
import shutil
import signal
import subprocess
import time


class BootError(Exception):
    """The machine cannot boot a container (the test skips and says why)."""


def sh(*args, check=True, timeout=120, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: rc {r.returncode}: {r.stderr.strip()[-500:]}")
    return r


def cannot_boot_reason():
    """Why this machine cannot boot a container here, or None."""
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn, overlayfs)"
    for tool in ("systemd-nspawn", "nsenter", "ip"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install systemd-container util-linux iproute2)"
    if not os.path.exists("/lib/systemd/systemd"):
        return "no systemd to boot (/lib/systemd/systemd)"
    return None


class Machine:
    """One booted container. netns: the name of a network namespace
    (ip netns) to join; without it, --private-network (loopback only)."""

    def __init__(self, name, workdir, netns=None):
        self.name, self.netns = name, netns
        self.dir = os.path.join(workdir, name)
        self.upper_mnt = os.path.join(self.dir, "ovl")
        self.root = os.path.join(self.dir, "root")
        self.proc = None
        self._leader = None

    # -- the root ---------------------------------------------------------
    def make_root(self):
        os.makedirs(self.upper_mnt, exist_ok=True)
        os.makedirs(self.root, exist_ok=True)
        r = sh("mount", "-t", "tmpfs", "-o", "size=2G,mode=755", "tmpfs", self.upper_mnt, check=False)
        if r.returncode:
            raise BootError(f"cannot mount a tmpfs: {r.stderr.strip()}")
        os.makedirs(os.path.join(self.upper_mnt, "upper"))
        os.makedirs(os.path.join(self.upper_mnt, "work"))
        r = sh("mount", "-t", "overlay", "overlay", "-o",
               f"lowerdir=/,upperdir={self.upper_mnt}/upper,workdir={self.upper_mnt}/work", self.root, check=False)
        if r.returncode:
            raise BootError(f"cannot mount an overlayfs of /: {r.stderr.strip()}")
        etc = os.path.join(self.root, "etc")
        # Nothing the host enabled for itself (databases, timers, gettys)
        # belongs in the test's boot; wait-online would hold every unit
        # After=network-online.target for its 2-minute timeout.
        masked = {os.path.basename(p) for p in glob.glob("/etc/systemd/system/*.wants/*")}
        masked |= {"systemd-networkd-wait-online.service", "getty@tty1.service", "console-getty.service"}
        for unit in masked:
            if unit.endswith(".target"):
                continue
            dst = os.path.join(etc, "systemd", "system", unit)
            if os.path.lexists(dst):
                os.unlink(dst)
            os.symlink("/dev/null", dst)
        # A machine-id: without one the boot is a "first boot", which runs
        # preset-all and would enable (and start) units by itself.
        if os.path.lexists(os.path.join(etc, "machine-id")):
            os.unlink(os.path.join(etc, "machine-id"))
        sh("systemd-machine-id-setup", f"--root={self.root}")
        with open(os.path.join(etc, "hostname"), "w") as f:
            f.write(self.name + "\n")

    def put(self, host_path, path):
        """Copy a host file into the container's root."""
        dst = self.root + path
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(host_path, dst)

    # -- boot and run -----------------------------------------------------
    def boot(self):
        net = [f"--network-namespace-path=/run/netns/{self.netns}"] if self.netns else ["--private-network"]
        self.log_path = os.path.join(self.dir, "console.log")
        # --keep-unit: nspawn would otherwise ask the host's (absent) bus
        # for a scope; --register=no: no machined either.
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", self.root, "-b", "-M", self.name, "--register=no", "--keep-unit",
             "--console=read-only"] + net,
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)

    def wait_booted(self, timeout=60):
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise BootError(f"systemd-nspawn exited with {self.proc.returncode}: {self.console()[-800:]}")
            if self.leader():
                r = self.run("systemctl", "is-system-running", check=False)
                state = r.stdout.strip()
                if state in ("running", "degraded"):
                    return state
            time.sleep(0.5)
        raise BootError(f"the container did not finish booting in {timeout} s (state '{state}'): "
                        f"{self.console()[-800:]}")

    def console(self):
        try:
            return open(self.log_path, errors="replace").read()
        except OSError:
            return ""

    def leader(self):
        """PID of the container's PID 1 (nspawn's child)."""
        if self._leader:
            return self._leader
        try:
            kids = open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()
        except OSError:
            return None
        if kids:
            self._leader = int(kids[0])
        return self._leader

    def run(self, *cmd, check=True, user=None, timeout=60, input=None):
        if user:
            cmd = ("runuser", "-u", user, "--") + cmd
        r = subprocess.run(["nsenter", "--all", "-t", str(self.leader()), "--"] + list(cmd),
                           capture_output=True, text=True, timeout=timeout, input=input,
                           env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                                "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""})
        if check and r.returncode != 0:
            raise RuntimeError(f"[{self.name}] {' '.join(cmd)}: rc {r.returncode}: "
                               f"{(r.stdout + r.stderr).strip()[-800:]}")
        return r

    def sh(self, script, check=True, timeout=60):
        return self.run("sh", "-ec", script, check=check, timeout=timeout)

    def show(self, unit, *props):
        out = self.run("systemctl", "show", unit, *[f"-p{p}" for p in props]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    # -- teardown ---------------------------------------------------------
    def down(self):
        if self.proc and self.proc.poll() is None:
            leader = self.leader()
            if leader:
                try:
                    os.kill(leader, signal.SIGRTMIN + 4)   # systemd: poweroff
                except OSError:
                    pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for m in (self.root, self.upper_mnt):
            if os.path.ismount(m):
                sh("umount", "-l", m, check=False)
        # nspawn leaves this behind when /run is not a tmpfs
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.name}", ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def netns_pair(ns_a, ns_b, ip_a, ip_b, tag):
    """Two network namespaces joined by a veth pair (ip_a/24 in ns_a,
    ip_b/24 in ns_b), loopback up in both: two hosts on one wire."""
    a, b = f"{tag}a", f"{tag}b"
    sh("ip", "netns", "add", ns_a)
    sh("ip", "netns", "add", ns_b)
    sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    for ns, dev, ip in ((ns_a, a, ip_a), (ns_b, b, ip_b)):
        sh("ip", "link", "set", dev, "netns", ns)
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")


def netns_del(*names):
    for ns in names:
        sh("ip", "netns", "del", ns, check=False)
