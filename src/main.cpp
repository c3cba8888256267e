// pullmail — fetch mail from POP3/IMAP servers. Everything lives in the
// pullmail_core library; see cli.cpp.
#include "cli.h"
#include "secrets.h"

int main(int argc, char** argv) {
    pullmail::harden_process();  // before any password is read: no core file may hold one
    return pullmail::cli_main(argc, argv);
}
