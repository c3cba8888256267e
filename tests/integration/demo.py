#!/usr/bin/env python3
"""Driver for scripts/demo: a throwaway Dovecot with sample mail, a demo
config, and two runs of the real pullmail against it.

    python3 tests/integration/demo.py DEMO_DIR PULLMAIL_BINARY
"""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from dovecot import Dovecot  # noqa: E402
from messages import ordinary_corpus, strange_corpus  # noqa: E402
from util import write_config  # noqa: E402


def say(msg=""):
    print(msg, flush=True)


def run(argv):
    say("$ " + " ".join(argv))
    rc = subprocess.call(argv, stderr=subprocess.STDOUT)
    say("(exit status %d)" % rc)
    return rc


def main():
    demo = os.path.abspath(sys.argv[1])
    binary = os.path.abspath(sys.argv[2])
    os.makedirs(demo, exist_ok=True)
    server_dir = os.path.join(demo, "server")
    rc = 0
    d = Dovecot(server_dir, users={"alice": "alice-demo-pw", "bob": "bob-demo-pw"})
    try:
        d.start()
        pop_mail = ordinary_corpus(5, seed=2024, prefix="demo") + strange_corpus(include_huge=False)[:3]
        for m in pop_mail:
            d.add_message("alice", m.data)
        d.create_folder("bob", "Lists.cpp")
        imap_inbox = ordinary_corpus(3, seed=2025, prefix="demo-inbox")
        imap_list = ordinary_corpus(2, seed=2026, prefix="demo-list")
        for m in imap_inbox:
            d.add_message("bob", m.data)
        for m in imap_list:
            d.add_message("bob", m.data, folder="Lists.cpp")
        ca = os.path.join(demo, "ca.pem")
        shutil.copyfile(d.ca_file, ca)
        config = os.path.join(demo, "config.toml")
        write_config(config, {
            "alice-pop3s": {
                "url": "pop3s://localhost:%d" % d.ports["pop3s"],
                "user": "alice",
                "password": "alice-demo-pw",
                "ca_file": ca,
                "deliver": "maildir:" + os.path.join(demo, "Maildir"),
            },
            "bob-imaps": {
                "url": "imaps://localhost:%d" % d.ports["imaps"],
                "user": "bob",
                "password": "bob-demo-pw",
                "ca_file": ca,
                "folders": ["INBOX", "Lists/cpp"],
                "deliver": "mbox:" + os.path.join(demo, "imap.mbox"),
            },
        }, state_dir=os.path.join(demo, "state"))
        say("Dovecot 2.3 is running on 127.0.0.1: pop3s port %d, imaps port %d (log: %s)"
            % (d.ports["pop3s"], d.ports["imaps"], d.log_path))
        say("alice has %d messages in INBOX (POP3S); bob has %d in INBOX and %d in Lists.cpp (IMAPS)"
            % (len(pop_mail), len(imap_inbox), len(imap_list)))
        say("")
        say("Config written to %s:" % os.path.relpath(config))
        with open(config) as f:
            say("".join("    " + l for l in f))
        say("First run, fetches everything:")
        rc = run([binary, "-f", config, "-v"])
        say("")
        say("Second run, nothing new:")
        rc2 = run([binary, "-f", config, "-v"])
        rc = rc or rc2
        say("")
        unread = sum(1 for folder in ("INBOX", "Lists.cpp")
                     for f in d.flags("bob", folder).values() if "\\Seen" not in f)
        say("Mail is kept on the server (keep defaults to true): alice still has %d messages, "
            "%d of bob's %d are still unread (IMAP fetches with BODY.PEEK[])."
            % (d.count("alice"), unread, len(imap_inbox) + len(imap_list)))
    finally:
        d.stop()
        if os.path.exists(d.log_path):
            shutil.copyfile(d.log_path, os.path.join(demo, "dovecot.log"))
        shutil.rmtree(server_dir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
