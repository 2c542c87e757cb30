import ArgumentParser
import CourierCLI
import CourierCore

public struct KeygenCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Generate an Ed25519 signing key for the staging server.",
        discussion: """
            Writes KEY (the secret, mode 0600) and KEY.pub (the public key to install on clients). \
            An existing file is never overwritten. Keep KEY on the staging server only; copy \
            KEY.pub into every client's trust directory (e.g. /etc/courier/trust/). To rotate, generate \
            a new key, add its .pub to the clients' trust directory, sign with both for a while, then \
            list the old key id in the trust directory's 'revoked' file.
            """)

    @Option(
        name: .long,
        help: ArgumentHelp("Path of the secret key to write; the public key goes to <path>.pub.", valueName: "KEY"))
    var out: String

    @Option(name: .long, help: "A comment stored in the .pub file (e.g. the host and date).")
    var comment: String = ""

    public init() {}

    public func run() throws {
        try mapErrors("courier-stage keygen") {
            let key = SigningKey()
            let pub = try key.write(to: out, comment: comment)
            print("wrote \(out) (secret, mode 0600) and \(out).pub")
            print("key id \(pub.keyID)")
        }
    }
}
