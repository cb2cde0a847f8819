import Foundation
import TapestryPcap
import TapestryReplay
import TapestryTopology

#if canImport(Glibc)
import Glibc
#endif

/// A capture file as `replay`, `trace` and `test` get one: the bytes are written to a temporary
/// file and read to the end through libpcap and PcapReader, and, when they read, replayed and
/// traced through a two-port topology (the writer, the merge and the timestamp rendering).
///
/// Invariants: reading ends (at the end or with a PcapError); every record's captured bytes are
/// within the snap length libpcap allows; replay and trace either succeed or throw, never trap.
enum PcapTarget {
    static let topology: Topology = {
        let yaml = """
            name: capture
            networks: { lan: { vlan: 7 } }
            ports:
              a: { tap: ca, network: lan }
              b: { tap: cb, network: lan }
            """
        guard case .success(let topology) = TopologyLoader.parse(yaml: yaml, file: "capture.yaml") else {
            fatalError("the pcap target's topology does not load")
        }
        return topology
    }()

    /// One file per process, rewritten for every input; in memory (/dev/shm) where there is one,
    /// because ext4's create, write and unlink per input took most of this target's time.
    static let directory: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory()
        let path = base + "tapestry-fuzz-pcap-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: PcapTarget.directory) }
        return path
    }()

    static func run(_ data: UnsafeRawBufferPointer) throws(InvariantViolation) {
        let path = directory + "/input.pcap"
        guard FileManager.default.createFile(atPath: path, contents: Data(data)) else {
            throw InvariantViolation("cannot write \(path)")
        }
        var frames = 0
        do {
            let reader = try PcapReader(path: path)
            while let record = try reader.next() {
                frames += 1
                // libpcap refuses records over its maximum snap length (256 KiB, more for D-Bus).
                try require(record.bytes.count <= 1 << 27, "a record of \(record.bytes.count) bytes")
                _ = Replay.seconds(record.timestampNanoseconds)
                if frames > 1000 { break }
            }
        } catch let error as PcapError {
            _ = error.description
            return
        } catch let violation as InvariantViolation {
            throw violation
        } catch {
            throw InvariantViolation("unexpected error \(error)")
        }
        guard frames <= 64 else { return }
        let inputs = [Replay.Input(port: "a", path: path)]
        _ = try? Tracer(topology: topology, inputs: inputs).run()
        let out = directory + "/out"
        _ = try? Replay(topology: topology, inputs: inputs, outputDirectory: out).run()
        try? FileManager.default.removeItem(atPath: out)
    }
}
