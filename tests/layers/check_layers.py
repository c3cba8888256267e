#!/usr/bin/env python3
"""Fails when a file in src/ includes a header of a higher layer, or when a
source file is in no layer (add it to the table below).

The allowed direction is written once, here: a file may include headers of
its own layer and of the layers below it."""

import os
import re
import sys

# Lowest first. A name is a file stem: foo covers foo.h and foo.cpp.
LAYERS = [
    ("base", "error text_util fs_util log progress test_hooks message_key mail_date fingerprint secret_file config run_types "
             "process_runner secrets memory_limits rate_guard daemon_schedule"),
    ("state and codecs", "state_journal state_snapshot state_store state_marks pop3_codec imap_codec imap_append_args retrieval fetchmailrc fetchmailrc_toml smtp_codec imap_idle sasl"),
    ("transport", "transport trust_store credentials login oauth2 oauth2_store"),
    ("sessions", "pop3_session imap_session imap_watch sync_link"),
    ("delivery", "deliver deliver_impl deliver_common deliver_maildir deliver_maildirpp deliver_mbox deliver_mda deliver_imap "
                 "deliver_smtp intake"),
    ("plan", "sync_plan mail_source"),
    ("flows", "folder_sync account_context fetch_pop3 fetch_imap folder_watch"),
    ("runner", "runner report daemon"),
    ("command line", "cli main"),
]


def main():
    src = os.path.join(os.environ.get("PULLMAIL_SRC") or os.path.join(os.path.dirname(__file__), "..", ".."), "src")
    level = {}
    for i, (_, names) in enumerate(LAYERS):
        for n in names.split():
            level[n] = i
    problems = []
    for f in sorted(os.listdir(src)):
        stem, ext = os.path.splitext(f)
        if ext not in (".h", ".cpp"):
            continue
        if stem not in level:
            problems.append("%s is in no layer: add it to LAYERS in %s" % (f, __file__))
            continue
        with open(os.path.join(src, f), encoding="utf-8") as fh:
            for no, line in enumerate(fh, 1):
                m = re.match(r'\s*#\s*include\s+"([^"]+)\.h"', line)
                if not m:
                    continue
                inc = m.group(1)
                if inc not in level:
                    problems.append("%s:%d includes %s.h, which is in no layer" % (f, no, inc))
                elif level[inc] > level[stem]:
                    problems.append("%s:%d (%s) includes %s.h (%s): a higher layer" %
                                    (f, no, LAYERS[level[stem]][0], inc, LAYERS[level[inc]][0]))
    for p in problems:
        print("layers: " + p)
    print("layers: %d files checked, %d problem(s)" % (len([f for f in os.listdir(src) if f.endswith((".h", ".cpp"))]),
                                                        len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
