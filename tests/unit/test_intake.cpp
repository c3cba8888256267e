// Intake with a deliverer that allows background commits: the
// session goes on receiving while a batch is being made durable, and nothing
// is recorded as seen before its batch is durable.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>

#include "intake.h"
#include "log.h"
#include "state_journal.h"
#include "test_support.h"

using namespace pullmail;
using pullmail::test::TempDir;

namespace {

// Records every step in order; sync_prepared() can be held shut by a gate.
class GatedDeliverer final : public Deliverer {
public:
    std::mutex mu;
    std::condition_variable cv;
    bool gate_open = true;
    bool syncing = false;          // inside sync_prepared(), waiting at the gate
    std::vector<std::string> events;
    std::string refuse_key;        // commit() of this key throws
    std::string bug_key;           // commit() of this key throws std::out_of_range
    std::string prepare_bug_key;   // prepare() of this key throws std::out_of_range

    void event(const std::string& e) {
        std::lock_guard<std::mutex> lock(mu);
        events.push_back(e);
    }

    class Sink final : public DeliverySink {
    public:
        Sink(GatedDeliverer& d, std::string key) : d_(d), key_(std::move(key)) {}
        void write(std::string_view chunk) override { data_ += chunk; }
        std::string prepare() override {
            if (key_ == d_.prepare_bug_key) throw std::out_of_range("stoi");
            d_.event("prepare " + key_);
            return "fake " + key_;
        }
        void commit() override {
            if (key_ == d_.refuse_key) throw Error(ErrorKind::LocalIO, "cannot publish " + key_);
            if (key_ == d_.bug_key) throw std::out_of_range("stoi");
            d_.event("commit " + key_);
        }
        void abort() noexcept override { d_.event("abort " + key_); }

    private:
        GatedDeliverer& d_;
        std::string key_;
        std::string data_;
    };

    std::unique_ptr<DeliverySink> begin(const MessageMeta& meta) override {
        return std::make_unique<Sink>(*this, meta.key);
    }
    Recovery recover(std::string_view) override { return Recovery::NotDelivered; }
    std::size_t max_batch() const override { return 4; }
    bool concurrent_commit() const override { return true; }
    void sync_prepared() override {
        std::unique_lock<std::mutex> lock(mu);
        events.push_back("sync_prepared");
        syncing = true;
        cv.notify_all();
        cv.wait(lock, [this] { return gate_open; });
        syncing = false;
    }
    void sync_committed() override { event("sync_committed"); }
    std::string describe() const override { return "fake:"; }

    void wait_until_syncing() {
        std::unique_lock<std::mutex> lock(mu);
        REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [this] { return syncing; }));
    }
    void open() {
        {
            std::lock_guard<std::mutex> lock(mu);
            gate_open = true;
        }
        cv.notify_all();
    }
    std::size_t index_of(const std::string& e) {
        std::lock_guard<std::mutex> lock(mu);
        for (std::size_t i = 0; i < events.size(); ++i)
            if (events[i] == e) return i;
        FAIL("no event " << e);
        return 0;
    }
};

RemoteMessage message(int i) {
    RemoteMessage m;
    m.uidl = "u" + std::to_string(i);
    m.key = pop3_key(m.uidl);
    m.number = static_cast<std::uint32_t>(i);
    m.size = 0;  // unknown: the fake bodies are shorter than any real size
    return m;
}

void feed(Intake& h, int i) {
    auto m = message(i);
    h.begin(m);
    h.data("Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n");
    h.end(m);
}

Account fake_account() {
    Account a;
    a.name = "acct";
    return a;
}

}  // namespace

TEST_CASE("a full batch is committed in the background while the next one is received") {
    TempDir dir;
    Account acc = fake_account();
    Logger log(0);
    GatedDeliverer d;
    d.gate_open = false;
    StateJournal state(dir.path + "/acct.state");
    Intake h(acc, d, state, log, nullptr);

    for (int i = 1; i <= 4; ++i) feed(h, i);  // the 4th fills the batch: handed off
    d.wait_until_syncing();
    for (int i = 5; i <= 7; ++i) feed(h, i);  // received while the disk syncs
    CHECK(d.index_of("prepare " + pop3_key("u5")) > d.index_of("sync_prepared"));
    CHECK(h.delivered() == 0);
    for (int i = 1; i <= 7; ++i) CHECK_FALSE(state.seen(message(i).key));

    d.open();
    h.flush();
    CHECK(h.delivered() == 7);
    CHECK(h.errors().empty());
    for (int i = 1; i <= 7; ++i) CHECK(state.seen(message(i).key));
    // Each batch: data synced before its commits, commits before the sync
    // that makes them durable.
    CHECK(d.index_of("commit " + pop3_key("u1")) > d.index_of("sync_prepared"));
    CHECK(d.index_of("sync_committed") > d.index_of("commit " + pop3_key("u4")));

    state.sync();  // the flows sync seen records at the end of a run
    StateJournal again(dir.path + "/acct.state");
    for (int i = 1; i <= 7; ++i) CHECK(again.seen(message(i).key));
    CHECK(again.pending_intents().empty());
}

TEST_CASE("a message the background commit cannot publish is not recorded, the others are") {
    TempDir dir;
    Account acc = fake_account();
    Logger log(-1);
    GatedDeliverer d;
    d.refuse_key = pop3_key("u3");
    StateJournal state(dir.path + "/acct.state");
    {
        Intake h(acc, d, state, log, nullptr);
        for (int i = 1; i <= 6; ++i) feed(h, i);
        h.flush();
        // u1 and u2 committed; u3 failed, u4 (same batch, after it) never
        // published; u5 and u6 are the next batch.
        CHECK(h.delivered() == 4);
        REQUIRE(h.errors().size() == 1);
        CHECK(std::string(h.errors()[0].what()).find("cannot publish") != std::string::npos);
    }
    CHECK(state.seen(message(1).key));
    CHECK(state.seen(message(2).key));
    CHECK_FALSE(state.seen(message(3).key));
    CHECK_FALSE(state.seen(message(4).key));
    CHECK(state.seen(message(5).key));
    CHECK(state.seen(message(6).key));
    CHECK(state.pending_intents().empty());
}

TEST_CASE("an exception other than Error fails its message only, never the ones after it") {
    for (bool in_commit : {true, false}) {
        CAPTURE(in_commit);
        TempDir dir;
        Account acc = fake_account();
        Logger log(-1);
        GatedDeliverer d;
        (in_commit ? d.bug_key : d.prepare_bug_key) = pop3_key("u3");
        StateJournal state(dir.path + "/acct.state");
        {
            Intake h(acc, d, state, log, nullptr);
            for (int i = 1; i <= 6; ++i) feed(h, i);
            CHECK_FALSE(h.stop_requested());
            h.flush();
            CHECK(h.delivered() == 5);
            REQUIRE(h.errors().size() == 1);
            CHECK(h.errors()[0].kind() == ErrorKind::Internal);
            std::string what = h.errors()[0].what();
            CHECK(what.find("stoi") != std::string::npos);
            CHECK(what.find("u3") != std::string::npos);
        }
        for (int i = 1; i <= 6; ++i) CHECK(state.seen(message(i).key) == (i != 3));
        CHECK(state.pending_intents().empty());
    }
}

TEST_CASE("a handler destroyed without flush() finishes the batch in commit, records nothing it did not sync") {
    TempDir dir;
    Account acc = fake_account();
    Logger log(0);
    GatedDeliverer d;
    StateJournal state(dir.path + "/acct.state");
    {
        Intake h(acc, d, state, log, nullptr);
        for (int i = 1; i <= 5; ++i) feed(h, i);  // 1-4 handed off; 5 in hand
    }
    for (int i = 1; i <= 4; ++i) CHECK(state.seen(message(i).key));
    CHECK_FALSE(state.seen(message(5).key));
}

TEST_CASE("an MDA that exits 75 (try later) is started once: the handler stops, one error") {
    TempDir dir;
    Account acc = fake_account();
    Logger log(-1);
    StateJournal state(dir.path + "/acct.state");
    std::string starts = dir.path + "/starts";
    DeliveryTarget t;
    t.kind = DeliveryTarget::Kind::Mda;
    t.command = "echo started >> '" + starts + "'; cat >/dev/null; echo busy >&2; exit 75";
    DeliveryOptions opts;
    opts.spool_dir = dir.path;
    auto d = make_file_deliverer(t, opts);
    Intake h(acc, *d, state, log, nullptr);
    for (int i = 1; i <= 5 && !h.stop_requested(); ++i) feed(h, i);
    for (int i = 1; i <= 5; ++i) feed(h, i);  // a pipelined session may still hand some over
    h.flush();
    CHECK(h.stop_requested());
    CHECK(h.delivered() == 0);
    CHECK(h.failed_count() == 1);
    REQUIRE(h.errors().size() == 1);
    CHECK(h.errors()[0].kind() == ErrorKind::Temporary);
    CHECK(pullmail::test::read_file(starts) == "started\n");
    for (int i = 1; i <= 5; ++i) CHECK_FALSE(state.seen(message(i).key));
}
