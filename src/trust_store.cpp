#include "trust_store.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
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

// The system CA file as a lookup that parses it only when chain building
// asks for an issuer the store does not hold yet. With OpenSSL 3 parsing
// Debian's ~140-certificate bundle costs more CPU than the rest of a poll
// with nothing new, and a server anchored by the account's ca_file never
// needs it. The anchors are the same as with an eager load: whatever the
// bundle holds is in the store before the first answer that could need it.
struct LazyFile {
    std::string path;
    std::once_flag once;
};

int lazy_file_get_by_subject(X509_LOOKUP* lu, X509_LOOKUP_TYPE type, const X509_NAME* name, X509_OBJECT* ret) {
    auto* lf = static_cast<LazyFile*>(X509_LOOKUP_get_method_data(lu));
    if (!lf || type != X509_LU_X509) return 0;
    std::call_once(lf->once, [&] {
        X509_load_cert_crl_file(lu, lf->path.c_str(), X509_FILETYPE_PEM);
        ERR_clear_error();  // a failure leaves the store without them: verification fails closed
    });
    X509_STORE* store = X509_LOOKUP_get_store(lu);
    if (!store || !X509_STORE_lock(store)) return 0;
    X509_OBJECT* found = X509_OBJECT_retrieve_by_subject(X509_STORE_get0_objects(store), type, name);
    int ok = found && X509_OBJECT_set1_X509(ret, X509_OBJECT_get0_X509(found)) == 1;
    X509_STORE_unlock(store);
    return ok;
}

void lazy_file_free(X509_LOOKUP* lu) { delete static_cast<LazyFile*>(X509_LOOKUP_get_method_data(lu)); }

X509_LOOKUP_METHOD* lazy_file_method() {
    static X509_LOOKUP_METHOD* m = [] {
        X509_LOOKUP_METHOD* meth = X509_LOOKUP_meth_new("pullmail lazy CA file");
        if (meth) {
            X509_LOOKUP_meth_set_get_by_subject(meth, lazy_file_get_by_subject);
            X509_LOOKUP_meth_set_free(meth, lazy_file_free);
        }
        return meth;
    }();
    return m;
}

// Adds the system CA file to the store, parsed on first need. False (with
// the reason) when the file cannot be read, as an eager load would be.
bool add_system_file(X509_STORE* store, const std::string& path, std::string& why) {
    if (FILE* f = std::fopen(path.c_str(), "r")) {
        std::fclose(f);
    } else {
        why = std::strerror(errno);
        return false;
    }
    X509_LOOKUP_METHOD* meth = lazy_file_method();
    X509_LOOKUP* lu = meth ? X509_STORE_add_lookup(store, meth) : nullptr;
    if (!lu) {
        why = "out of memory";
        return false;
    }
    auto* lf = new LazyFile{path, {}};
    X509_LOOKUP_set_method_data(lu, lf);
    return true;
}

X509_STORE* load_store(const TrustSources& src, TrustError& error) {
    X509_STORE* store = X509_STORE_new();
    if (!store) {
        error.message = "out of memory";
        return nullptr;
    }
    // The same sources, in the same order, and the same failures as
    // libcurl's populate_x509_store() for a verifying connection.
    std::string why;
    if (!src.system_file.empty() && !add_system_file(store, src.system_file, why)) {
        error.message = "cannot load the system CA certificates " + src.system_file + " (" + why + ")";
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
