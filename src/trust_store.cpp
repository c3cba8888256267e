#include "trust_store.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <map>
#include <mutex>
#include <tuple>

namespace pullmail {

namespace {

std::string openssl_reason() {
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (!e) return "no certificates found";
    const char* r = ERR_reason_error_string(e);
    return r ? r : "unreadable";
}

X509_STORE* load_store(const TrustSources& src, TrustError& error) {
    X509_STORE* store = X509_STORE_new();
    if (!store) {
        error.message = "out of memory";
        return nullptr;
    }
    // The same sources, in the same order, and the same failures as
    // libcurl's populate_x509_store() for a verifying connection.
    if (!src.system_file.empty() && X509_STORE_load_file(store, src.system_file.c_str()) != 1) {
        error.message = "cannot load the system CA certificates " + src.system_file + " (" + openssl_reason() + ")";
        X509_STORE_free(store);
        return nullptr;
    }
    if (!src.system_dir.empty() && X509_STORE_load_path(store, src.system_dir.c_str()) != 1) {
        error.message = "cannot use the system CA directory " + src.system_dir + " (" + openssl_reason() + ")";
        X509_STORE_free(store);
        return nullptr;
    }
    if (!src.ca_file.empty() && X509_STORE_load_file(store, src.ca_file.c_str()) != 1) {
        error.message = "cannot load ca_file " + src.ca_file + " (" + openssl_reason() + ")";
        error.ca_file = true;
        X509_STORE_free(store);
        return nullptr;
    }
    X509_STORE_set_flags(store, X509_V_FLAG_TRUSTED_FIRST | X509_V_FLAG_PARTIAL_CHAIN);
    return store;
}

struct Stores {
    std::mutex mutex;
    std::map<std::tuple<std::string, std::string, std::string>, X509_STORE*> by_sources;
    ~Stores() {
        for (auto& entry : by_sources) X509_STORE_free(entry.second);
    }
};

Stores& stores() {
    static Stores s;
    return s;
}

}  // namespace

X509_STORE* shared_trust_store(const TrustSources& src, TrustError& error) {
    Stores& s = stores();
    std::lock_guard<std::mutex> lock(s.mutex);
    auto key = std::make_tuple(src.system_file, src.system_dir, src.ca_file);
    auto it = s.by_sources.find(key);
    if (it == s.by_sources.end()) {
        // A failed load is not cached: the file may be fixed for the next
        // account, and failing is rare enough not to need speed.
        X509_STORE* store = load_store(src, error);
        if (!store) return nullptr;
        it = s.by_sources.emplace(std::move(key), store).first;
    }
    if (X509_STORE_up_ref(it->second) != 1) {
        error.message = "out of memory";
        return nullptr;
    }
    return it->second;
}

}  // namespace pullmail
