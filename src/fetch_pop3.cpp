// fetch_pop3.cpp — the POP3 side of an account run: a MailSource over a
// Pop3Session, synced by the common executor (folder_sync.h).
#include "account_context.h"
#include "intake.h"
#include "folder_sync.h"
#include "message_key.h"
#include "pop3_session.h"
#include "test_hooks.h"

namespace pullmail {

namespace {

// POP3 has one "folder", the maildrop, and one identity, the account.
// Deletions take effect at QUIT only, so remove() ends the session.
class Pop3Source final : public MailSource {
public:
    Pop3Source(ServerLink link, bool pipelining)
        : link_(std::move(link)), pop_(*link_.channel, pipelining) {}
    ~Pop3Source() override { close(); }

    std::vector<std::string> folders(const std::vector<std::string>&) override { return {""}; }

    Opened open(const std::string&, bool) override {
        Opened o;
        o.identity.protocol = SourceProtocol::Pop3;
        o.listing = pop_.start_and_list(link_.conn->login_lines());
        // The UIDL lives on in the key only (a listing of a million
        // messages holds it once); retrieve() puts it back on the copies
        // it hands to the handler, describe() reads it from the key.
        for (auto& m : o.listing) {
            m.key = pop3_key(std::move(m.uidl));
            m.uidl.clear();
        }
        o.exists = static_cast<std::uint32_t>(o.listing.size());
        test_step("listed");
        return o;
    }

    std::map<std::uint32_t, std::string> headers(const std::vector<RemoteMessage>& msgs,
                                                 std::map<std::uint32_t, std::string>*) override {
        std::vector<std::uint32_t> numbers;
        for (const auto& m : msgs) numbers.push_back(m.number);
        return pop_.headers(numbers);
    }

    void retrieve(const std::vector<RemoteMessage>& msgs, MessageHandler& handler) override {
        std::vector<RemoteMessage> named = msgs;  // a slice of the plan (folder_sync.cpp)
        for (auto& m : named)
            if (m.uidl.empty()) m.uidl = pop3_uidl(m.key);
        pop_.retrieve(named, handler);
    }

    Removed remove(const std::vector<RemoteMessage>& msgs) override {
        std::vector<std::uint32_t> numbers;
        for (const auto& m : msgs) numbers.push_back(m.number);
        auto q = pop_.delete_and_quit(numbers);
        ended_ = true;
        test_step("after quit");
        Removed r;
        r.ended_session = true;
        if (q.committed) {
            for (const auto& m : msgs) r.keys.push_back(m.key);
        } else {
            r.error = Error(ErrorKind::Protocol, "the server did not confirm QUIT, so it did not delete the " +
                                                     std::to_string(msgs.size()) +
                                                     " delivered message(s); they will be deleted on the next run",
                            true)
                          .set_server_text(q.server_text);
        }
        return r;
    }

    void close() noexcept override {
        if (ended_) return;
        ended_ = true;
        pop_.quit(false);  // nothing was deleted: its answer cannot matter
    }

private:
    ServerLink link_;
    Pop3Session pop_;
    bool ended_ = false;
};

}  // namespace

void fetch_pop3(AccountContext& ctx, SyncShared& shared) {
    Pop3Source source(connect_account(ctx), ctx.account.pipelining);
    Intake handler(ctx.account, ctx.deliverer, ctx.state, ctx.log, ctx.opts.interrupted, &shared.mu);
    try {
        for (const auto& folder : source.folders({})) sync_folder(source, folder, handler, shared);
    } catch (...) {
        account_for(handler, shared);
        throw;
    }
    source.close();
    account_for(handler, shared);
}

}  // namespace pullmail
