/// The Update Framework (TUF 1.0.x) for Courier: issue #14. See docs/TUF.md.
public enum CourierTUF {
    /// The TUF specification version this client implements.
    public static let specVersion = "1.0.31"
}
