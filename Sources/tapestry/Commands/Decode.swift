import ArgumentParser
import TapestryFrameSyntax
import TapestryPcap
import TapestryReplay

extension Tapestry {
    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every frame of a capture in the frame syntax of test files.",
            discussion: """
                Each frame, numbered from 1, as the YAML a test file's frames and expectations use, with every \
                field (a checksum only when it is wrong: a correct one is the default). Building a printed \
                frame gives back its bytes exactly; a frame the syntax cannot say field by field is printed \
                as raw: HEX.
                """
        )

        @Argument(help: "The capture (pcap or pcapng, Ethernet).", completion: Complete.capture)
        var capture: String

        @Option(help: "Print only this frame (1 is the first).")
        var frame: Int?

        func validate() throws {
            if let frame, frame < 1 { throw ValidationError("--frame counts from 1") }
        }

        func run() throws {
            var number = 0
            do throws(PcapError) {
                let reader = try PcapReader(path: capture)
                while let record = try reader.next() {
                    number += 1
                    guard frame == nil || frame == number else { continue }
                    let spec = FrameSpec.decode(Array(record.bytes))
                    let cut = record.bytes.count < record.originalLength ? " (cut from \(record.originalLength) by the capture)" : ""
                    print("# frame \(number): t=\(TapestryReplay.Replay.seconds(record.timestampNanoseconds)), \(record.bytes.count) bytes\(cut)")
                    print("- " + spec.text(indent: "  "))
                }
            } catch {
                printError("tapestry decode: \(error)")
                throw ExitCode(1)
            }
            if let frame, frame > number {
                printError("tapestry decode: \(capture) holds \(number) frames, there is no frame \(frame)")
                throw ExitCode(1)
            }
        }
    }
}
