// The executor (folder_sync.h) over an in-memory MailSource and Deliverer:
// a failure at every step leaves the state and the server consistent
// (nothing removed that is not durably delivered), and a rerun delivers
// everything exactly once.
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "intake.h"
#include "folder_sync.h"
#include "log.h"
#include "mail_source.h"
#include "state_journal.h"
#include "test_support.h"

using namespace pullmail;
using pullmail::test::TempDir;

namespace {

enum class Step { None, Open, Headers, Retrieve, Remove, RemoveUnconfirmed, Commit, SyncCommitted };

struct Failure {
    Step step = Step::None;
    std::size_t after = 0;  // Retrieve: messages handed out before the break; Commit: commits before
};

std::string lf(std::string s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (!(s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n')) out += s[i];
    return out;
}

std::string body(int i) { return "Message-ID: <m" + std::to_string(i) + "@x>\r\nSubject: s\r\n\r\nbody " + std::to_string(i) + "\r\n"; }

// A POP3-like maildrop: messages by UIDL; remove() takes effect only when
// "confirmed".
class MemorySource final : public MailSource {
public:
    std::map<std::string, std::string> server;  // uidl -> bytes
    Failure fail;
    std::size_t retrieved = 0;

    std::vector<std::string> folders(const std::vector<std::string>&) override { return {""}; }
    Opened open(const std::string&, bool) override {
        if (fail.step == Step::Open) throw Error(ErrorKind::Temporary, "open broke", true);
        Opened o;
        std::uint32_t n = 0;
        for (const auto& [uidl, data] : server) {
            RemoteMessage m;
            m.number = ++n;
            m.uidl = uidl;
            m.key = pop3_key(uidl);
            m.size = data.size();
            o.listing.push_back(m);
        }
        return o;
    }
    std::map<std::uint32_t, std::string> headers(const std::vector<RemoteMessage>&,
                                                 std::map<std::uint32_t, std::string>*) override {
        if (fail.step == Step::Headers) throw Error(ErrorKind::Temporary, "headers broke", true);
        return {};
    }
    void retrieve(const std::vector<RemoteMessage>& msgs, MessageHandler& h) override {
        std::size_t k = 0;
        for (const auto& m : msgs) {
            if (fail.step == Step::Retrieve && k++ == fail.after) throw Error(ErrorKind::Temporary, "cut", true);
            h.begin(m);
            h.data(server.at(m.uidl));
            h.end(m);
            ++retrieved;
        }
    }
    Removed remove(const std::vector<RemoteMessage>& msgs) override {
        if (fail.step == Step::Remove) throw Error(ErrorKind::Temporary, "remove broke", true);
        Removed r;
        r.ended_session = true;
        if (fail.step == Step::RemoveUnconfirmed) {
            r.error = Error(ErrorKind::Protocol, "QUIT not confirmed", true);
            return r;
        }
        for (const auto& m : msgs) {
            server.erase(m.uidl);
            r.keys.push_back(m.key);
        }
        return r;
    }
    void close() noexcept override {}
};

// Delivered messages in memory; exactly-once through recover().
class MemoryDeliverer final : public Deliverer {
public:
    std::multiset<std::string> delivered;
    Failure fail;
    std::size_t commits = 0;

    class Sink final : public DeliverySink {
    public:
        Sink(MemoryDeliverer& d, std::string key) : d_(d), key_(std::move(key)) {}
        void write(std::string_view c) override { data_ += c; }
        std::string prepare() override { return "mem " + key_; }
        void commit() override {
            if (d_.fail.step == Step::Commit && d_.commits >= d_.fail.after)
                throw Error(ErrorKind::LocalIO, "disk full");
            ++d_.commits;
            d_.delivered.insert(data_);
            d_.by_key[key_] = data_;
        }
        void abort() noexcept override {}

    private:
        MemoryDeliverer& d_;
        std::string key_, data_;
    };
    std::map<std::string, std::string> by_key;

    std::unique_ptr<DeliverySink> begin(const MessageMeta& meta) override {
        return std::make_unique<Sink>(*this, meta.key);
    }
    // Published but not known to be durable: nothing may be recorded.
    void sync_committed() override {
        if (fail.step == Step::SyncCommitted) throw Error(ErrorKind::LocalIO, "cannot sync");
    }
    Recovery recover(std::string_view intent) override {
        return by_key.count(std::string(intent.substr(4))) ? Recovery::Delivered : Recovery::NotDelivered;
    }
    std::string describe() const override { return "memory:"; }
};

struct Run {
    Account account;
    Logger log{0};
    AccountResult result;
};

// One account run: recover intents, sync, prune. Returns false when it threw.
bool run_once(const std::string& state_path, MemorySource& src, MemoryDeliverer& dst, bool keep) {
    Run r;
    r.account.name = "acct";
    StateJournal state(state_path);
    for (const auto& p : state.pending_intents()) {
        if (dst.recover(p.intent) == Deliverer::Recovery::Delivered)
            state.record_seen(p.key, 0, "-");
        else
            state.drop_intent(p.key);
    }
    PlanOptions o;
    o.keep = keep;
    SyncShared sh{r.account, o, r.log, state, dst, r.result, {}, {}};
    Intake handler(r.account, dst, state, r.log, nullptr, &sh.mu);
    try {
        sync_folder(src, "", handler, sh);
        finish_sync(sh);
    } catch (const Error&) {
        handler.flush();
        return false;
    }
    account_for(handler, sh);
    return r.result.errors.empty();
}

}  // namespace

TEST_CASE("executor: a failure at any step removes nothing undelivered; a rerun delivers each message once") {
    std::vector<Failure> failures{{Step::None, 0},   {Step::Open, 0},     {Step::Headers, 0},
                                  {Step::Retrieve, 0}, {Step::Retrieve, 2}, {Step::Retrieve, 4},
                                  {Step::Remove, 0},   {Step::RemoveUnconfirmed, 0}, {Step::Commit, 0},
                                  {Step::Commit, 3},   {Step::SyncCommitted, 0}};
    for (bool keep : {true, false}) {
        for (const auto& f : failures) {
            CAPTURE(static_cast<int>(f.step));
            CAPTURE(f.after);
            CAPTURE(keep);
            TempDir dir;
            std::string path = dir.path + "/acct.state";
            MemorySource src;
            MemoryDeliverer dst;
            for (int i = 0; i < 6; ++i) src.server["u" + std::to_string(i)] = body(i);
            std::set<std::string> all;
            for (const auto& [u, d] : src.server) all.insert(lf(d));  // targets get LF line endings
            src.fail = f;
            if (f.step == Step::Commit || f.step == Step::SyncCommitted) dst.fail = f;
            run_once(path, src, dst, keep);
            // Whatever is gone from the server was delivered.
            for (const auto& d : all)
                if (std::none_of(src.server.begin(), src.server.end(), [&](auto& kv) { return lf(kv.second) == d; }))
                    CHECK(dst.delivered.count(d) == 1);
            src.fail = {};
            dst.fail = {};
            CHECK(run_once(path, src, dst, keep));
            std::set<std::string> got(dst.delivered.begin(), dst.delivered.end());
            CHECK(got == all);
            CHECK(dst.delivered.size() == all.size());  // nothing twice
            CHECK(src.server.size() == (keep ? all.size() : 0u));
            // A third run finds nothing new and downloads nothing.
            std::size_t before = src.retrieved;
            CHECK(run_once(path, src, dst, keep));
            CHECK(src.retrieved == before);
        }
    }
}

TEST_CASE("executor: a message the server announced larger than it sent is delivered and kept") {
    TempDir dir;
    MemorySource src;
    MemoryDeliverer dst;
    src.server["u1"] = body(1);
    src.server["u2"] = body(2);
    // The listing announces more than retrieve() hands out for u2.
    class ShortSource final : public MailSource {
    public:
        explicit ShortSource(MemorySource& s) : s_(s) {}
        std::vector<std::string> folders(const std::vector<std::string>& c) override { return s_.folders(c); }
        Opened open(const std::string& f, bool ro) override {
            auto o = s_.open(f, ro);
            for (auto& m : o.listing)
                if (m.uidl == "u2") m.size += 100;
            return o;
        }
        std::map<std::uint32_t, std::string> headers(const std::vector<RemoteMessage>& m,
                                                     std::map<std::uint32_t, std::string>* dates) override {
            return s_.headers(m, dates);
        }
        void retrieve(const std::vector<RemoteMessage>& m, MessageHandler& h) override { s_.retrieve(m, h); }
        Removed remove(const std::vector<RemoteMessage>& m) override { return s_.remove(m); }
        void close() noexcept override {}

    private:
        MemorySource& s_;
    } shortsrc(src);
    Run r;
    r.account.name = "acct";
    StateJournal state(dir.path + "/acct.state");
    PlanOptions o;
    o.keep = false;
    SyncShared sh{r.account, o, r.log, state, dst, r.result, {}, {}};
    Intake handler(r.account, dst, state, r.log, nullptr, &sh.mu);
    sync_folder(shortsrc, "", handler, sh);
    finish_sync(sh);
    account_for(handler, sh);
    CHECK(dst.delivered.size() == 2);
    CHECK(src.server.count("u1") == 0);
    CHECK(src.server.count("u2") == 1);  // kept on the server
    CHECK(r.result.deleted == 1);
}

TEST_CASE("executor: max_messages is one budget for the account's folders, taken in the configured order") {
    // Three folders of four messages, max_messages = 5, each folder on its
    // own connection (thread); the last folder starts first, yet the
    // budget goes to the folders in their order: 4, 1, 0.
    TempDir dir;
    StateJournal state(dir.path + "/acct.state");
    MemoryDeliverer dst;
    std::vector<MemorySource> srcs(3);
    for (int f = 0; f < 3; ++f)
        for (int i = 0; i < 4; ++i) srcs[f].server["f" + std::to_string(f) + "-" + std::to_string(i)] = body(f * 10 + i);
    Run r;
    r.account.name = "acct";
    PlanOptions o;
    o.max_messages = 5;
    SyncShared sh{r.account, o, r.log, state, dst, r.result, {}, {}};
    std::vector<std::unique_ptr<Intake>> handlers;
    for (int f = 0; f < 3; ++f) handlers.push_back(std::make_unique<Intake>(r.account, dst, state, r.log, nullptr, &sh.mu));
    std::vector<std::thread> threads;
    for (int f = 2; f >= 0; --f) {
        threads.emplace_back([&, f] { sync_folder(srcs[f], "", *handlers[f], sh, nullptr, static_cast<std::size_t>(f)); });
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (auto& t : threads) t.join();
    for (auto& h : handlers) account_for(*h, sh);
    CHECK(srcs[0].retrieved == 4);
    CHECK(srcs[1].retrieved == 1);
    CHECK(srcs[2].retrieved == 0);
    CHECK(dst.delivered.size() == 5);
    CHECK(sh.planned == 5);
    CHECK(r.result.errors.empty());
}
