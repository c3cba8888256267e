// Unit tests for Maildir++ delivery (deliver = "maildir++:PATH"): one Maildir
// per folder, the maildirfolder mark, and the crash-recovery contract of
// deliver.h with intents that name the folder's directory.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "deliver.h"
#include "error.h"
#include "test_support.h"

using namespace pullmail;
using namespace pullmail::test;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<Deliverer> tree(const std::string& path) {
    DeliveryTarget t;
    t.kind = DeliveryTarget::Kind::Maildir;
    t.maildir_plus_plus = true;
    t.path = path;
    return make_file_deliverer(t, DeliveryOptions{});
}

std::size_t count(const std::string& dir) {
    std::error_code ec;
    std::size_t n = 0;
    for (auto it = fs::directory_iterator(dir, ec); it != fs::directory_iterator(); ++it) ++n;
    return n;
}

// begin + write + prepare + sync_prepared: the state a crash finds before commit.
std::pair<std::unique_ptr<DeliverySink>, std::string> prepared(Deliverer& d, const std::string& folder,
                                                               const std::string& body) {
    MessageMeta meta;
    meta.account = "a";
    meta.key = "k";
    meta.folder = folder;
    auto sink = d.begin(meta);
    sink->write(body);
    std::string intent = sink->prepare();
    d.sync_prepared();
    return {std::move(sink), intent};
}

}  // namespace

TEST_CASE("maildir++: INBOX at the top, each folder its own Maildir with maildirfolder") {
    TempDir dir;
    std::string root = dir.path + "/Mail";
    auto d = tree(root);
    CHECK(d->describe() == "maildir++:" + root);
    for (auto [folder, body] : {std::pair{"INBOX", "top\n"}, {"Lists/cpp", "cpp\n"}, {"", "pop3\n"}}) {
        auto [sink, intent] = prepared(*d, folder, body);
        sink->commit();
    }
    d->sync_committed();
    CHECK(count(root + "/new") == 2);
    CHECK(count(root + "/.Lists.cpp/new") == 1);
    CHECK(fs::exists(root + "/.Lists.cpp/maildirfolder"));
    CHECK_FALSE(fs::exists(root + "/maildirfolder"));
    for (const auto& e : fs::directory_iterator(root + "/.Lists.cpp/new")) CHECK(read_file(e.path()) == "cpp\n");
}

TEST_CASE("maildir++: recover finds a message in its folder, and rolls back one not committed") {
    TempDir dir;
    std::string root = dir.path + "/Mail";
    std::string done_intent, open_intent;
    {
        auto d = tree(root);
        auto [sink, intent] = prepared(*d, "Lists/cpp", "done\n");
        sink->commit();
        d->sync_committed();
        done_intent = intent;
        auto [sink2, intent2] = prepared(*d, "Sent Items", "open\n");
        open_intent = intent2;
        sink2.release();  // "crash": neither committed nor aborted
    }
    CHECK(done_intent.starts_with("maildir++ "));
    CHECK(done_intent.ends_with(" .Lists.cpp"));
    CHECK(open_intent.ends_with(" .Sent Items"));
    CHECK(count(root + "/.Sent Items/tmp") == 1);
    auto d = tree(root);  // the next run
    CHECK(d->recover(done_intent) == Deliverer::Recovery::Delivered);
    CHECK(d->recover(open_intent) == Deliverer::Recovery::NotDelivered);
    CHECK(count(root + "/.Sent Items/tmp") == 0);
    CHECK(count(root + "/.Lists.cpp/new") == 1);
    for (const char* bad : {"maildir++ x", "maildir++ n ..", "maildir++ n ../x", "maildir++ n a/b", "maildir n"})
        CHECK_THROWS_AS(d->recover(bad), Error);
}
