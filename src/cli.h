// cli.h — the command line: parses options, loads the configuration, runs
// the accounts and turns the results into output and an exit status.
#pragma once

namespace pullmail {

// The whole program; main() only calls this.
int cli_main(int argc, char** argv);

}  // namespace pullmail
