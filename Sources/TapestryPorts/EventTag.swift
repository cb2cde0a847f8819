/// What one epoll registration of the live loop is about, and its 32-bit encoding in
/// `epoll_event.data`: the loop registers and dispatches through this one type, so a tag is made
/// and read in one place.
enum EventTag: Equatable {
    /// SIGINT or SIGTERM arrived (the signalfd).
    case stop
    /// SIGHUP arrived: reload the topology.
    case reload
    /// The control thread posted jobs (its eventfd).
    case control
    /// A descriptor of the port at `index` in its `role`.
    case port(Int, LivePort.Role)

    /// Port indices fit below the role bits.
    static let indexMask: UInt32 = (1 << 24) - 1
    private static let listeningBit: UInt32 = 1 << 24
    private static let sendingBit: UInt32 = 1 << 25

    var raw: UInt32 {
        switch self {
        case .stop: return UInt32.max
        case .control: return UInt32.max - 1
        case .reload: return UInt32.max - 3
        case .port(let index, let role):
            let base = UInt32(truncatingIfNeeded: index) & Self.indexMask
            switch role {
            case .frames: return base
            case .listening: return base | Self.listeningBit
            case .sending: return base | Self.sendingBit
            }
        }
    }

    init(raw: UInt32) {
        switch raw {
        case UInt32.max: self = .stop
        case UInt32.max - 1: self = .control
        case UInt32.max - 3: self = .reload
        default:
            let index = Int(raw & Self.indexMask)
            if raw & Self.listeningBit != 0 {
                self = .port(index, .listening)
            } else if raw & Self.sendingBit != 0 {
                self = .port(index, .sending)
            } else {
                self = .port(index, .frames)
            }
        }
    }
}
