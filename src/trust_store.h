// The certificates a TLS connection is verified against, loaded once per
// process and shared by every connection that uses the same ca_file.
//
// libcurl 7.88 loads its CA bundle into a fresh store for every connection,
// and with OpenSSL 3 parsing the ~140 certificates of Debian's bundle is most
// of the CPU an account run costs. The store built here holds exactly what
// libcurl would have loaded (its built-in CA file and CA directory) plus the
// account's ca_file as an extra anchor, with libcurl's verification flags.
#pragma once

#include <string>

typedef struct x509_store_st X509_STORE;

namespace pullmail {

struct TrustSources {
    std::string system_file;  // libcurl's default CURLOPT_CAINFO ("" = none)
    std::string system_dir;   // libcurl's default CURLOPT_CAPATH ("" = none)
    std::string ca_file;      // the account's extra anchor ("" = none)
};

struct TrustError {
    std::string message;       // which file could not be loaded, and why
    bool ca_file = false;      // the account's ca_file (a configuration error), not the system's
};

// A new reference to the shared store for these sources (the caller frees it
// with X509_STORE_free, or hands it to OpenSSL with a set1 call), or nullptr
// with `error` set. Thread-safe; the first caller for a set of sources loads
// it, concurrent callers wait for that load.
X509_STORE* shared_trust_store(const TrustSources& sources, TrustError& error);

}  // namespace pullmail
