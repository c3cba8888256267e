// Unit tests for the parts of deliver.h shared by all targets: CRLF
// conversion, Maildir names, the factory.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "deliver.h"
#include "deliver_impl.h"
#include "fs_util.h"
#include "error.h"

using namespace pullmail;

namespace {

std::string crlf_whole(std::string_view in) {
    CrlfToLf c;
    std::string out;
    c.convert(in, out);
    c.finish(out);
    return out;
}

}  // namespace

TEST_CASE("CrlfToLf converts CRLF and keeps lone CR") {
    CHECK(crlf_whole("") == "");
    CHECK(crlf_whole("a\r\nb\r\n") == "a\nb\n");
    CHECK(crlf_whole("a\rb\r\n") == "a\rb\n");
    CHECK(crlf_whole("\r\r\n") == "\r\n");
    CHECK(crlf_whole("x\r") == "x\r");
    CHECK(crlf_whole("\n\n\r\n\r") == "\n\n\n\r");
    CHECK(crlf_whole("\r\r\r") == "\r\r\r");
}

TEST_CASE("CrlfToLf gives the same result at every split point") {
    const std::string in = "H: v\r\n\r\nbody\rline\r\n\r\r\n\r\rend\r";
    const std::string want = crlf_whole(in);
    CHECK(want == "H: v\n\nbody\rline\n\r\n\r\rend\r");
    for (std::size_t i = 0; i <= in.size(); ++i) {
        for (std::size_t j = i; j <= in.size(); ++j) {
            CrlfToLf c;
            std::string out;
            c.convert(std::string_view(in).substr(0, i), out);
            c.convert(std::string_view(in).substr(i, j - i), out);
            c.convert(std::string_view(in).substr(j), out);
            c.finish(out);
            CHECK_MESSAGE(out == want, "split at " << i << "," << j);
        }
    }
    // Byte by byte, with empty chunks in between.
    CrlfToLf c;
    std::string out;
    for (char ch : in) {
        c.convert(std::string_view(&ch, 1), out);
        c.convert("", out);
    }
    c.finish(out);
    CHECK(out == want);
}

TEST_CASE("CrlfToLf can be reused after finish") {
    CrlfToLf c;
    std::string out;
    c.convert("a\r", out);
    c.finish(out);
    c.convert("\nb", out);
    c.finish(out);
    CHECK(out == "a\r\nb");
}

TEST_CASE("maildir_unique_name follows the Maildir convention") {
    CHECK(maildir_unique_name(1700000000, 123456, 4242, 7, "mail.example.org") ==
          "1700000000.M123456P4242Q7.mail.example.org");
    CHECK(maildir_unique_name(0, 0, 1, 0, "h") == "0.M0P1Q0.h");
    // '/' and ':' are written as octal escapes.
    CHECK(maildir_unique_name(5, 6, 7, 8, "a/b:c") == "5.M6P7Q8.a\\057b\\072c");
    CHECK(maildir_unique_name(5, 6, 7, 8, "::") == "5.M6P7Q8.\\072\\072");
}

TEST_CASE("Maildir names of this process are unique, across threads too") {
    std::vector<std::vector<std::string>> per_thread(4);
    std::vector<std::thread> threads;
    for (auto& names : per_thread) {
        threads.emplace_back([&names] {
            for (int i = 0; i < 2500; ++i) names.push_back(detail::next_maildir_name());
        });
    }
    for (auto& t : threads) t.join();
    std::set<std::string> all;
    for (const auto& names : per_thread) {
        for (const auto& n : names) {
            CHECK(n.find('/') == std::string::npos);
            CHECK(n.find(':') == std::string::npos);
            all.insert(n);
        }
    }
    CHECK(all.size() == 10000);
}

TEST_CASE("dir_name") {
    using pullmail::dir_name;
    CHECK(dir_name("a/b") == "a");
    CHECK(dir_name("a/b/") == "a");
    CHECK(dir_name("b") == ".");
    CHECK(dir_name("/b") == "/");
    CHECK(dir_name("/") == "/");
    CHECK(dir_name("/x//y") == "/x");
}

TEST_CASE("make_file_deliverer describes its targets") {
    DeliveryOptions opts;
    DeliveryTarget t;
    t.kind = DeliveryTarget::Kind::Maildir;
    t.path = "/home/me/Mail/inbox";
    CHECK(make_file_deliverer(t, opts)->describe() == "maildir:/home/me/Mail/inbox");
    CHECK_FALSE(make_file_deliverer(t, opts)->at_least_once());
    t.kind = DeliveryTarget::Kind::Mbox;
    t.path = "/var/mail/me";
    CHECK(make_file_deliverer(t, opts)->describe() == "mbox:/var/mail/me");
    t.kind = DeliveryTarget::Kind::Mda;
    t.command = "procmail -d me";
    CHECK(make_file_deliverer(t, opts)->describe() == "mda:procmail -d me");
    CHECK(make_file_deliverer(t, opts)->at_least_once());
    t.kind = DeliveryTarget::Kind::Imap;
    CHECK_THROWS_AS(make_file_deliverer(t, opts), Error);
}

TEST_CASE("a recovery record of another kind of target is refused") {
    DeliveryOptions opts;
    DeliveryTarget t;
    t.kind = DeliveryTarget::Kind::Mbox;
    t.path = "/nonexistent/pullmail/mbox";
    auto d = make_file_deliverer(t, opts);
    try {
        d->recover("maildir 1.M2P3Q4.host");
        FAIL("no exception");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::LocalIO);
        CHECK(std::string(e.what()).find("different delivery target") != std::string::npos);
    }
}
