#include "account_run.h"

#include "test_hooks.h"

namespace pullmail {

ServerLink connect_account(const AccountRun& run) {
    const Account& acc = run.account;
    ConnectOptions copts{acc.name, acc.connect_timeout, run.opts.verbosity, &run.log};
    ServerLink link;
    link.conn = connect_and_login(acc.server, run.password, copts);
    test_step("logged in");
    link.channel = std::make_unique<Channel>(*link.conn, acc.timeout, acc.name, &run.log, run.opts.verbosity);
    link.channel->set_min_rate(static_cast<std::uint64_t>(acc.min_rate), acc.min_rate_window);
    link.channel->set_deadline(acc.run_timeout);
    return link;
}

}  // namespace pullmail
