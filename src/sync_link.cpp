#include "sync_link.h"

#include "error.h"
#include "log.h"
#include "test_hooks.h"

namespace pullmail {

SyncLink::~SyncLink() {
    session.reset();
    channel.reset();
    conn.reset();
}

SyncLinkKeeper::SyncLinkKeeper(const DaemonClock& clock, std::chrono::milliseconds idle_limit)
    : clock_(clock), idle_limit_(idle_limit) {}

SyncLinkKeeper::~SyncLinkKeeper() { close(); }

std::unique_ptr<SyncLink> SyncLinkKeeper::take(const std::string& account, Logger& log) {
    std::unique_ptr<SyncLink> link;
    {
        std::lock_guard<std::mutex> l(mu_);
        link = std::move(link_);
        if (!link) return nullptr;
        if (clock_.steady() - kept_at_ >= idle_limit_) {
            link->session->logout(false);
            return nullptr;
        }
    }
    std::string why;
    try {
        // Readable while kept means closed, reset or BYE (autologout, a
        // server restart): no NOOP needed to know it is gone.
        if (link->conn->wait(true, false, 0)) why = "the server closed it";
        else if (!link->session->noop()) why = "the server refused NOOP";
    } catch (const Error& e) {
        why = e.detail();
    }
    std::lock_guard<std::mutex> l(mu_);
    if (!why.empty()) {
        ++dropped_;
        log.detail(account, "the kept sync connection is gone (" + why + "); opening a new one");
        return nullptr;  // closed without LOGOUT: it may be half dead
    }
    ++reused_;
    test_mark("sync link: kept connection reused");
    return link;
}

void SyncLinkKeeper::keep(std::unique_ptr<SyncLink> link) {
    if (!link) return;
    bool ok = false;
    try {
        ok = link->session->unselect();
    } catch (const Error&) {
        return;  // broken: closed by its destructor
    }
    if (!ok) {
        link->session->logout(false);
        return;
    }
    std::lock_guard<std::mutex> l(mu_);
    if (link_) link_->session->logout(false);
    link_ = std::move(link);
    kept_at_ = clock_.steady();
}

void SyncLinkKeeper::expire() {
    std::lock_guard<std::mutex> l(mu_);
    if (link_ && clock_.steady() - kept_at_ >= idle_limit_) {
        link_->session->logout(false);
        link_.reset();
    }
}

void SyncLinkKeeper::close() {
    std::lock_guard<std::mutex> l(mu_);
    if (link_) link_->session->logout(false);
    link_.reset();
}

unsigned SyncLinkKeeper::reused() const {
    std::lock_guard<std::mutex> l(mu_);
    return reused_;
}

unsigned SyncLinkKeeper::dropped() const {
    std::lock_guard<std::mutex> l(mu_);
    return dropped_;
}

}  // namespace pullmail
