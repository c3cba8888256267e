// pullmail — fetch mail from POP3/IMAP servers. Everything lives in the
// pullmail_core library; see cli.cpp.
#include "cli.h"

int main(int argc, char** argv) { return pullmail::cli_main(argc, argv); }
