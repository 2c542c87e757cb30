import CourierConfig
import CourierCore
import CourierDeliver
import CourierFetch
import CourierStage

/// The configuration loaders. An admin writes these files, but they are also templated by
/// Ansible from inventories, and a loader that crashes on a typo is a stale fleet.
enum ConfigTargets {
    static let all: [FuzzTarget] = [
        FuzzTarget("stage-config", "stage.toml (TOMLKit, then the stager's own rules)") { b in
            _ = try StageConfig.parse(String(decoding: b, as: UTF8.self), path: "stage.toml")
        },
        FuzzTarget("deliver-policy", "courier-deliver's policy file (TOML)") { b in
            _ = try withTOML(String(decoding: b, as: UTF8.self), path: "policy.toml", Policy.parse)
        },
        FuzzTarget("proxy-url", "a proxy setting (http_proxy-style URL with credentials)") { b in
            _ = try ProxySettings.parse(String(decoding: b, as: UTF8.self))
        },
    ]
}
