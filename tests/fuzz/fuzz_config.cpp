// The configuration loader: TOML text in. Hostile or broken text may only
// end in pullmail::Error (kind Config), never another exception; a config
// that loads has what the rest of pullmail relies on.
#include "config.h"
#include "fuzz_support.h"

using namespace pullmail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    ConfigEnv env;
    env.vars["HOME"] = "/nonexistent/home";
    env.vars["XDG_STATE_HOME"] = "/nonexistent/state";
    try {
        Config c = parse_config(text, "fuzz.toml", env);
        FUZZ_ASSERT(!c.state_dir.empty());
        for (const auto& a : c.accounts) {
            FUZZ_ASSERT(!a.name.empty());
            FUZZ_ASSERT(c.find(a.name) != nullptr);
        }
    } catch (const Error& e) {
        FUZZ_ASSERT(e.kind() == ErrorKind::Config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz: exception other than pullmail::Error escaped: %s\n", e.what());
        std::abort();
    }
    return 0;
}
