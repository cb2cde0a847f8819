/// "Did you mean" for a misspelt name: the candidate within two edits (a swap of neighbours is
/// one), for every place a user names something the topology defines (keys, networks, ports,
/// load balancers, backends), in files, on the command line and over the control socket.
public enum DidYouMean {
    /// The nearest candidate, nil when none is within two edits (or the word is too long to be a
    /// misspelling: the search costs length x length per candidate).
    public static func closest(_ word: String, in candidates: some Sequence<String>) -> String? {
        let a = Array(word.utf8)
        guard a.count <= 64 else { return nil }
        var best: (name: String, distance: Int)?
        for candidate in candidates {
            let b = Array(candidate.utf8)
            // More than two bytes apart in length is more than two edits apart.
            guard abs(a.count - b.count) <= 2, let distance = YAMLReader.editDistance(a, b, limit: 2) else { continue }
            if best == nil || distance < best!.distance { best = (candidate, distance) }
        }
        return best?.name
    }

    /// " (did you mean 'NAME'?)", or "" when nothing is close.
    public static func suffix(_ word: String, in candidates: some Sequence<String>) -> String {
        closest(word, in: candidates).map { " (did you mean '\($0)'?)" } ?? ""
    }
}
