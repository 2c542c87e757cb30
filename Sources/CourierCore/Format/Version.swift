/// The one version string of Courier: what `--version` prints and what a staged package's
/// provenance names as its tool. One copy, so that the two never disagree.
public enum CourierVersion {
    public static let string = "0.2.0"

    /// The HTTP `User-Agent` of a program, `courier-stage/0.2.0`: what every fetch sends unless
    /// the configuration's `user_agent` says otherwise.
    public static func userAgent(_ program: String) -> String { "\(program)/\(string)" }
}
