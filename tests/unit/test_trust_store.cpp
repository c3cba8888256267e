// The process-wide CA store: loaded once per set of sources, shared, with
// libcurl's verification flags; unusable files are errors that name them.
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "test_support.h"
#include "trust_store.h"

using namespace pullmail;
using pullmail::test::TempDir;
using pullmail::test::read_file;
using pullmail::test::write_file;

namespace {

const char* kSystemBundle = "/etc/ssl/certs/ca-certificates.crt";

// The first certificate of the system bundle, as a file of its own.
std::string one_certificate(const TempDir& dir) {
    std::string bundle = read_file(kSystemBundle);
    auto end = bundle.find("-----END CERTIFICATE-----");
    REQUIRE(end != std::string::npos);
    std::string path = dir.path + "/one.pem";
    write_file(path, bundle.substr(0, end) + "-----END CERTIFICATE-----\n");
    return path;
}

std::size_t certificates_in(X509_STORE* store) {
    std::size_t n = 0;
    STACK_OF(X509_OBJECT)* objs = X509_STORE_get0_objects(store);
    for (int i = 0; i < sk_X509_OBJECT_num(objs); ++i)
        if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objs, i)) == X509_LU_X509) ++n;
    return n;
}

}  // namespace

TEST_CASE("the system bundle is loaded once and shared, with libcurl's verification flags") {
    TrustError err;
    X509_STORE* a = shared_trust_store({kSystemBundle, "/etc/ssl/certs", ""}, err);
    REQUIRE_MESSAGE(a != nullptr, err.message);
    X509_STORE* b = shared_trust_store({kSystemBundle, "/etc/ssl/certs", ""}, err);
    CHECK(a == b);
    // Parsed on first need (OpenSSL 3 makes parsing the bundle the biggest
    // CPU cost of a poll): a lookup of one of its subjects loads it all.
    CHECK(certificates_in(a) == 0);
    TempDir dir;
    std::string one = one_certificate(dir);
    X509_STORE* single = shared_trust_store({"", "", one}, err);
    REQUIRE(single != nullptr);
    X509* cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(X509_STORE_get0_objects(single), 0));
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    REQUIRE(X509_STORE_CTX_init(ctx, a, nullptr, nullptr) == 1);
    X509_OBJECT* found = X509_STORE_CTX_get_obj_by_subject(ctx, X509_LU_X509, X509_get_subject_name(cert));
    REQUIRE(found != nullptr);
    CHECK(X509_cmp(X509_OBJECT_get0_X509(found), cert) == 0);
    CHECK(certificates_in(a) > 50);
    X509_OBJECT_free(found);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(single);
    unsigned long flags = X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(a));
    CHECK((flags & X509_V_FLAG_PARTIAL_CHAIN) != 0);
    CHECK((flags & X509_V_FLAG_TRUSTED_FIRST) != 0);
    X509_STORE_free(a);
    X509_STORE_free(b);
}

TEST_CASE("a ca_file gets a store of its own: one account's anchor never reaches another") {
    TempDir dir;
    std::string one = one_certificate(dir);
    TrustError err;
    X509_STORE* plain = shared_trust_store({"", "", ""}, err);
    X509_STORE* with_ca = shared_trust_store({"", "", one}, err);
    REQUIRE(plain != nullptr);
    REQUIRE_MESSAGE(with_ca != nullptr, err.message);
    CHECK(plain != with_ca);
    CHECK(certificates_in(plain) == 0);
    CHECK(certificates_in(with_ca) == 1);
    X509_STORE_free(plain);
    X509_STORE_free(with_ca);
}

TEST_CASE("unusable CA files are errors that name the file, and are not cached") {
    TempDir dir;
    TrustError err;
    std::string garbage = dir.path + "/garbage.pem";
    write_file(garbage, "not a certificate\n");
    CHECK(shared_trust_store({"", "", garbage}, err) == nullptr);
    CHECK(err.message.find("ca_file " + garbage) != std::string::npos);
    CHECK(err.ca_file);

    err = {};
    std::string missing = dir.path + "/missing.crt";
    CHECK(shared_trust_store({missing, "", ""}, err) == nullptr);
    CHECK(err.message.find(missing) != std::string::npos);
    CHECK_FALSE(err.ca_file);  // the system's file: not the account's configuration

    // Fixed between two connections: the next one succeeds.
    std::string bundle = read_file(kSystemBundle);
    write_file(garbage, bundle.substr(0, bundle.find("-----END CERTIFICATE-----")) + "-----END CERTIFICATE-----\n");
    err = {};
    X509_STORE* fixed = shared_trust_store({"", "", garbage}, err);
    REQUIRE_MESSAGE(fixed != nullptr, err.message);
    CHECK(certificates_in(fixed) == 1);
    X509_STORE_free(fixed);
}
