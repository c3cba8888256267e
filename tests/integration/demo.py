#!/usr/bin/env python3
"""Driver for scripts/demo: a throwaway Dovecot with sample mail, a demo
config, and two runs of the real pullmail against it.

    python3 tests/integration/demo.py [--as UID:GID] DEMO_DIR PULLMAIL_BINARY

Runs as root (Dovecot's test instance needs it). The server's files live in a
private temporary directory of their own (see dovecot.py), removed at the
end; only the results go into DEMO_DIR: the config, the CA certificate, the
Maildir, the mbox, the state and a copy of the server log. With --as (what
scripts/demo passes when started by a user through sudo), those results
belong to that user and pullmail runs as that user.

Exit status 0 only when both runs succeeded and every sample message was
delivered exactly once; otherwise the last line says what failed.
"""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from dovecot import Dovecot, DovecotError  # noqa: E402
from messages import ordinary_corpus, strange_corpus  # noqa: E402
from util import count_maildir, maildir_messages, message_id, read_mbox, write_config  # noqa: E402


class DemoFailed(Exception):
    pass


def say(msg=""):
    print(msg, flush=True)


def demo_corpus():
    """(alice's INBOX, bob's INBOX, bob's Lists.cpp): the sample mail."""
    pop_mail = ordinary_corpus(5, seed=2024, prefix="demo") + strange_corpus(include_huge=False)[:3]
    imap_inbox = ordinary_corpus(3, seed=2025, prefix="demo-inbox")
    imap_list = ordinary_corpus(2, seed=2026, prefix="demo-list")
    return pop_mail, imap_inbox, imap_list


class Owner:
    """Who the results belong to and who runs pullmail: this process, or
    (--as UID:GID) the user who started the demo through sudo."""

    def __init__(self, spec):
        self.uid = self.gid = None
        if spec:
            uid, _, gid = spec.partition(":")
            self.uid, self.gid = int(uid), int(gid or uid)

    def own(self, *paths):
        """Give what this script wrote to the user (pullmail, run as them,
        writes the rest)."""
        if self.uid is None:
            return
        for p in paths:
            if os.path.lexists(p):
                os.lchown(p, self.uid, self.gid)

    def run_kwargs(self):
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def run(argv, owner):
    say("$ " + " ".join(argv))
    rc = subprocess.call(argv, stderr=subprocess.STDOUT, **owner.run_kwargs())
    say("(exit status %d)" % rc)
    return rc


def fill_server(d):
    pop_mail, imap_inbox, imap_list = demo_corpus()
    for m in pop_mail:
        d.add_message("alice", m.data)
    d.create_folder("bob", "Lists.cpp")
    for m in imap_inbox:
        d.add_message("bob", m.data)
    for m in imap_list:
        d.add_message("bob", m.data, folder="Lists.cpp")
    return pop_mail, imap_inbox, imap_list


def check_delivered(demo, pop_mail, imap_mail):
    """Every sample message delivered exactly once (by Message-ID)."""
    got_pop = [message_id(m) for m in maildir_messages(os.path.join(demo, "Maildir"))]
    got_imap = [message_id(m) for m in read_mbox(os.path.join(demo, "imap.mbox"))]
    for what, got, want in (("alice's Maildir", got_pop, pop_mail), ("bob's mbox", got_imap, imap_mail)):
        if sorted(got) != sorted(message_id(m.data) for m in want):
            raise DemoFailed("%s holds %d message(s), expected the %d sample messages once each"
                             % (what, len(got), len(want)))


def demo_run(d, demo, binary, owner):
    d.start()
    pop_mail, imap_inbox, imap_list = fill_server(d)
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
    owner.own(demo, ca, config)
    say("Dovecot 2.3 is running on 127.0.0.1: pop3s port %d, imaps port %d"
        % (d.ports["pop3s"], d.ports["imaps"]))
    say("Its files (configuration, certificate, mail, log) are in %s, removed at the end" % d.dir)
    say("alice has %d messages in INBOX (POP3S); bob has %d in INBOX and %d in Lists.cpp (IMAPS)"
        % (len(pop_mail), len(imap_inbox), len(imap_list)))
    say("")
    say("Config written to %s:" % config)
    with open(config) as f:
        say("".join("    " + l for l in f))
    say("First run, fetches everything:")
    if run([binary, "-f", config, "-v"], owner) != 0:
        raise DemoFailed("the first pullmail run failed (its messages are above)")
    check_delivered(demo, pop_mail, imap_inbox + imap_list)
    say("")
    say("Second run, nothing new:")
    if run([binary, "-f", config, "-v"], owner) != 0:
        raise DemoFailed("the second pullmail run failed (its messages are above)")
    check_delivered(demo, pop_mail, imap_inbox + imap_list)
    say("")
    unread = sum(1 for folder in ("INBOX", "Lists.cpp")
                 for f in d.flags("bob", folder).values() if "\\Seen" not in f)
    say("Mail is kept on the server (keep defaults to true): alice still has %d messages, "
        "%d of bob's %d are still unread (IMAP fetches with BODY.PEEK[])."
        % (d.count("alice"), unread, len(imap_inbox) + len(imap_list)))
    say("Delivered: %d messages in %s/Maildir, %d in %s/imap.mbox."
        % (count_maildir(os.path.join(demo, "Maildir")), demo, len(imap_inbox) + len(imap_list), demo))


def main(argv):
    args = argv[1:]
    spec = None
    if args[:1] == ["--as"]:
        spec, args = args[1], args[2:]
    if len(args) != 2:
        say("usage: demo.py [--as UID:GID] DEMO_DIR PULLMAIL_BINARY")
        return 64
    demo, binary = os.path.abspath(args[0]), os.path.abspath(args[1])
    owner = Owner(spec)
    os.makedirs(demo, exist_ok=True)
    owner.own(demo)
    d = None
    try:
        d = Dovecot(users={"alice": "alice-demo-pw", "bob": "bob-demo-pw"})
        demo_run(d, demo, binary, owner)
        return 0
    except (DemoFailed, DovecotError, AssertionError, OSError, subprocess.SubprocessError) as e:
        say("")
        say("demo FAILED: %s" % e)
        return 1
    finally:
        if d is not None:
            d.stop()
            if os.path.exists(d.log_path):
                shutil.copyfile(d.log_path, os.path.join(demo, "dovecot.log"))
            d.cleanup()
        owner.own(os.path.join(demo, "dovecot.log"))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
