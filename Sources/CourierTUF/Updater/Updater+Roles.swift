extension Updater {
    /// The targets metadata of `role`, delegated by `delegator` ("root" for the top-level
    /// "targets"): already trusted, else the local copy if it verifies, else downloaded and
    /// verified — the same load a target search makes. For a caller that lists targets (the
    /// stager's `target_pattern`) instead of looking one up.
    public func loadRole(_ role: String, delegator: String) async throws -> SignedMetadata<Targets> {
        try await loadTargets(role: role, delegator: delegator)
    }
}
