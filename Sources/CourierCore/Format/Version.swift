/// The one version string of Courier: what `--version` prints and what a staged package's
/// provenance names as its tool. One copy, so that the two never disagree.
public enum CourierVersion {
    public static let string = "0.2.0"
}
