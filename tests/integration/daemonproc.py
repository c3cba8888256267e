"""A `pullmail --daemon` process for tests and the push benchmark: started
with the same clean environment as util.run_pullmail, its stderr collected
line by line in a thread, so a test can wait for a log line, signal it and
check how it stopped."""

import os
import subprocess
import threading
import time

from util import BIN, count_maildir, require_binary


class DaemonProcess:
    def __init__(self, args, home, env=None):
        require_binary()
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("PULLMAIL_") and not k.startswith("XDG_")}
        e["HOME"] = home
        e["XDG_CONFIG_HOME"] = os.path.join(home, ".config")
        e["XDG_STATE_HOME"] = os.path.join(home, ".local", "state")
        if env:
            e.update(env)
        self.lines = []
        self._lock = threading.Lock()
        self.p = subprocess.Popen([BIN] + [str(a) for a in args], env=e, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.p.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def err(self):
        with self._lock:
            return "\n".join(self.lines)

    def count(self, needle):
        with self._lock:
            return sum(needle in l for l in self.lines)

    def wait_for(self, needle, timeout=20, count=1):
        """Waits until `count` stderr lines contain needle; fails with the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(needle) >= count:
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError("daemon log has no %r (x%d) after %ds (exit %r):\n%s" %
                             (needle, count, timeout, self.p.poll(), self.err[-6000:]))

    def wait_delivered(self, maildir, n, timeout):
        """Waits until `maildir` holds n messages; returns the monotonic time
        it did, fails with the daemon's log when it does not."""
        return wait_delivered([self], maildir, n, timeout)

    def signal(self, sig):
        self.p.send_signal(sig)

    def stop(self, sig=None, timeout=20):
        """Signals (SIGTERM by default) and waits; returns the exit status."""
        import signal as _signal
        if self.p.poll() is None:
            self.p.send_signal(sig or _signal.SIGTERM)
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("daemon did not stop within %ds:\n%s" % (timeout, self.err[-6000:]))
        self._reader.join(timeout=5)
        self._close()
        return self.p.returncode

    def _close(self):
        for f in (self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self._reader.join(timeout=5)
        self._close()
        return False


def wait_delivered(daemons, maildir, n, timeout):
    """DaemonProcess.wait_delivered for a delivery any of `daemons` may make;
    the failure shows each one's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_maildir(maildir) >= n:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError("%d of %d messages in %s after %ds:\n%s" % (
        count_maildir(maildir), n, maildir, timeout, "\n----\n".join(d.err[-6000:] for d in daemons)))
