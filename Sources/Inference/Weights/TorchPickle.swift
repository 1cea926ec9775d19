#if canImport(FoundationEssentials)
import FoundationEssentials  // as the rest of Inference: Data and URL without ICU
#else
import Foundation
#endif

// The subset of Python's pickle format that torch.save writes: a small stack machine that builds
// plain values (dicts, lists, tuples, numbers, strings), tensor recipes (storage, offset, shape,
// strides) and opaque stand-ins for anything else, never running any Python-defined behaviour.

/// A non-tensor leaf of a torch checkpoint, or an extra value to store next to a state dict.
public enum TorchPickleValue: Sendable, Equatable, CustomStringConvertible {
    /// Python's `None` (not named `none`, which would read as `Optional.none` in comparisons).
    case null
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes(Data)
    /// A value kept but not interpreted: an instance of an unknown class, a dtype, a numpy scalar, an
    /// integer wider than 64 bits. The text is Python-like, for people, not for parsing.
    case opaque(String)

    public var description: String {
        switch self {
        case .null: "None"
        case let .bool(b): b ? "True" : "False"
        case let .int(i): String(i)
        case let .float(d): String(d)
        case let .string(s): s
        case let .bytes(d): "<\(d.count) bytes>"
        case let .opaque(text): text
        }
    }

    public var intValue: Int? { if case let .int(i) = self { i } else if case let .bool(b) = self { b ? 1 : 0 } else { nil } }
    public var doubleValue: Double? { if case let .float(d) = self { d } else { intValue.map(Double.init) } }
    public var stringValue: String? { if case let .string(s) = self { s } else { nil } }
}

extension TorchPickleValue: ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByBooleanLiteral {
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .float(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

/// A storage as a tensor refers to it: the root storage's key and element type, and for the legacy
/// format's storage views, where the view starts in the root and how many elements it has.
struct TorchStorageRef {
    var key: String
    var dtype: StoredDType
    var elementOffset = 0
    /// nil: up to the end of the root storage.
    var elementCount: Int?
}

/// What `_rebuild_tensor_v2` was asked to build; turned into a HostTensor once storages are readable
/// (the legacy format stores them after the pickle).
struct TorchTensorRecipe {
    var storage: TorchStorageRef
    var offset: Int
    var shape: [Int]
    var strides: [Int]
}

/// Lists and dicts are shared by reference, as pickle's memo requires: a dict is memoised when
/// created and filled afterwards, and every later reference must see it filled.
///
/// Every container (tuples too) is a class whose deinit hands its contents to `PickleTeardown`, so
/// that destroying a value takes the same stack however deep it is nested: the default teardown of
/// nested arrays of enums recurses once per level and overflows the stack on a crafted pickle. Each
/// container also keeps its nesting depth, for the machine's depth limit.
protocol PickleContainer: AnyObject {
    /// Only for teardown: everything the container holds, which it no longer holds afterwards.
    func takeContents() -> [PickleValue]
}

final class PickleList: PickleContainer {
    var items: [PickleValue]
    private(set) var depth: Int
    init(_ items: [PickleValue] = []) {
        self.items = items
        depth = PickleValue.depth(containing: items)
    }
    func append(contentsOf more: [PickleValue]) {
        items += more
        depth = max(depth, PickleValue.depth(containing: more))
    }
    func takeContents() -> [PickleValue] { defer { items = [] }; return items }
    deinit { PickleTeardown.dismantle(&items) }
}

/// A tuple: immutable once built, but a class like the others so that its teardown is iterative.
final class PickleTuple: PickleContainer {
    private(set) var items: [PickleValue]
    let depth: Int
    init(_ items: [PickleValue]) {
        self.items = items
        depth = PickleValue.depth(containing: items)
    }
    func takeContents() -> [PickleValue] { defer { items = [] }; return items }
    deinit { PickleTeardown.dismantle(&items) }
}

final class PickleDict: PickleContainer {
    private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    private var positions: [String: Int] = [:]
    private(set) var depth = 1

    func set(_ key: PickleValue, _ value: PickleValue) {
        let identity = key.identity
        if let i = positions[identity] { entries[i].value = value } else {
            positions[identity] = entries.count
            entries.append((key, value))
        }
        depth = max(depth, 1 + key.depth, 1 + value.depth)
    }

    func value(forString key: String) -> PickleValue? { positions["s" + key].map { entries[$0].value } }

    func takeContents() -> [PickleValue] {
        defer { entries = []; positions = [:] }
        return entries.flatMap { [$0.key, $0.value] }
    }

    deinit {
        var contents = takeContents()
        PickleTeardown.dismantle(&contents)
    }
}

/// An instance of something this reader does not model: what made it, its arguments and BUILD state.
final class PickleObject: PickleContainer {
    let maker: String
    private(set) var args: [PickleValue]
    var state: PickleValue? { didSet { depth = max(depth, 1 + (state?.depth ?? 0)) } }
    private(set) var depth: Int
    init(maker: String, args: [PickleValue]) {
        self.maker = maker
        self.args = args
        depth = PickleValue.depth(containing: args)
    }
    func takeContents() -> [PickleValue] {
        defer { args = []; state = nil }
        return args + (state.map { [$0] } ?? [])
    }
    deinit {
        var contents = takeContents()
        PickleTeardown.dismantle(&contents)
    }
}

/// Destroys values without recursion: the contents of a container that nothing else refers to are
/// moved onto a work list before the emptied container is released, so no deinit ever meets a nested
/// container still full. A container still referenced elsewhere (the memo, another parent) is only
/// released; whoever drops it last dismantles it the same way.
enum PickleTeardown {
    static func dismantle(_ values: inout [PickleValue]) {
        guard values.contains(where: { $0.container != nil }) else { return }
        var pending = values
        values = []
        while !pending.isEmpty {
            // The popped value is a temporary that ends with this statement, so `object` is then the
            // only reference unless something outside the work list holds one.
            var object: AnyObject? = pending.removeLast().container
            guard object != nil else { continue }
            if isKnownUniquelyReferenced(&object), let container = object as? any PickleContainer {
                pending += container.takeContents()
            }
        }
    }
}

/// A value of the pickle machine. Not `indirect`: containers are classes (above), so a value holds at
/// most one reference and its destruction never recurses through nested values.
enum PickleValue {
    case null, bool(Bool), int(Int), float(Double), string(String), bytes(Data)
    /// An integer wider than 64 bits, as text (hexadecimal for the binary opcodes).
    case bigInt(String)
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    case global(module: String, name: String)
    case storage(TorchStorageRef)
    case tensor(TorchTensorRecipe)
    case object(PickleObject)

    /// A tuple of `items`.
    static func tuple(_ items: [PickleValue]) -> PickleValue { .tuple(PickleTuple(items)) }

    /// The container this value refers to; nil for a leaf.
    var container: (any PickleContainer)? {
        switch self {
        case let .tuple(t): t
        case let .list(l): l
        case let .dict(d): d
        case let .object(o): o
        default: nil
        }
    }

    /// Levels of containers: 0 for a leaf, 1 for a container of leaves. A list or dict filled after
    /// it was put inside another container (possible through the memo) leaves the outer depth
    /// short; that only weakens the machine's early limit, never the safety of teardown.
    var depth: Int {
        switch self {
        case let .tuple(t): t.depth
        case let .list(l): l.depth
        case let .dict(d): d.depth
        case let .object(o): o.depth
        default: 0
        }
    }

    /// The depth of a container holding `items`.
    static func depth(containing items: [PickleValue]) -> Int { 1 + (items.lazy.map(\.depth).max() ?? 0) }

    /// Dict-key identity; Python hashes True and 1 (and 1.0) alike, so they are one key.
    var identity: String {
        switch self {
        case let .string(s): "s" + s
        case let .int(i): "i\(i)"
        case let .bool(b): b ? "i1" : "i0"
        case let .float(d): d == d.rounded() && abs(d) < 0x1p62 ? "i\(Int(d))" : "f\(d)"
        default: "o" + describe()
        }
    }

    /// The text of a string-like value (pickles from Python 2 hold byte strings).
    var text: String? {
        switch self {
        case let .string(s): s
        case let .bytes(d): String(decoding: d, as: UTF8.self)
        default: nil
        }
    }

    /// Two lowercase hexadecimal digits.
    static func hex(_ byte: UInt8) -> String { (byte < 16 ? "0" : "") + String(byte, radix: 16) }

    /// Python-like text for messages and opaque values, cut short for deep or long structures (at
    /// most 6 levels, 8 items per container and 200 values in all: shared references can make a
    /// small pickle's structure exponentially large, and dict keys are described as they are set).
    func describe() -> String {
        var budget = 200
        return describe(depth: 0, budget: &budget)
    }

    private func describe(depth: Int, budget: inout Int) -> String {
        guard depth < 6, budget > 0 else { return "…" }
        budget -= 1
        func list(_ items: [PickleValue], _ open: String, _ close: String) -> String {
            let shown = items.prefix(8).map { $0.describe(depth: depth + 1, budget: &budget) }
            return open + shown.joined(separator: ", ") + (items.count > 8 ? ", …" : "") + close
        }
        switch self {
        case .null: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .float(d): return String(d)
        case let .bigInt(text): return text
        case let .string(s): return "'\(s.count > 80 ? s.prefix(80) + "…" : s)'"
        case let .bytes(d): return "b<\(d.count) bytes>"
        case let .tuple(t): return list(t.items, "(", t.items.count == 1 ? ",)" : ")")
        case let .list(l): return list(l.items, "[", "]")
        case let .dict(d):
            let shown = d.entries.prefix(8).map { "\($0.key.describe(depth: depth + 1, budget: &budget)): \($0.value.describe(depth: depth + 1, budget: &budget))" }
            return "{" + shown.joined(separator: ", ") + (d.entries.count > 8 ? ", …" : "") + "}"
        case let .global(module, name): return "\(module).\(name)"
        case let .storage(s): return "<\(s.dtype.rawValue) storage \(s.key)>"
        case let .tensor(t): return "tensor(\(t.storage.dtype.rawValue), shape \(t.shape))"
        case let .object(o): return o.maker + list(o.args, "(", ")")
        }
    }
}

/// Opcode bytes (Python's pickletools names), shared by the reader and the writer.
enum PickleOp {
    static let proto: UInt8 = 0x80, frame: UInt8 = 0x95, stop: UInt8 = 0x2E, mark: UInt8 = 0x28
    static let pop: UInt8 = 0x30, popMark: UInt8 = 0x31, dup: UInt8 = 0x32
    static let emptyDict: UInt8 = 0x7D, emptyList: UInt8 = 0x5D, emptyTuple: UInt8 = 0x29, emptySet: UInt8 = 0x8F
    static let tuple: UInt8 = 0x74, tuple1: UInt8 = 0x85, tuple2: UInt8 = 0x86, tuple3: UInt8 = 0x87
    static let dict: UInt8 = 0x64, list: UInt8 = 0x6C, frozenSet: UInt8 = 0x91
    static let append: UInt8 = 0x61, appends: UInt8 = 0x65, setItem: UInt8 = 0x73, setItems: UInt8 = 0x75, addItems: UInt8 = 0x90
    static let binInt: UInt8 = 0x4A, binInt1: UInt8 = 0x4B, binInt2: UInt8 = 0x4D, long1: UInt8 = 0x8A, long4: UInt8 = 0x8B
    static let int: UInt8 = 0x49, long: UInt8 = 0x4C, float: UInt8 = 0x46, binFloat: UInt8 = 0x47
    static let none: UInt8 = 0x4E, newTrue: UInt8 = 0x88, newFalse: UInt8 = 0x89
    static let binUnicode: UInt8 = 0x58, shortBinUnicode: UInt8 = 0x8C, binUnicode8: UInt8 = 0x8D
    static let binString: UInt8 = 0x54, shortBinString: UInt8 = 0x55
    static let binBytes: UInt8 = 0x42, shortBinBytes: UInt8 = 0x43, binBytes8: UInt8 = 0x8E, byteArray8: UInt8 = 0x96
    static let global: UInt8 = 0x63, stackGlobal: UInt8 = 0x93, reduce: UInt8 = 0x52, build: UInt8 = 0x62
    static let newObj: UInt8 = 0x81, newObjEx: UInt8 = 0x92
    static let put: UInt8 = 0x70, binPut: UInt8 = 0x71, longBinPut: UInt8 = 0x72, memoize: UInt8 = 0x94
    static let get: UInt8 = 0x67, binGet: UInt8 = 0x68, longBinGet: UInt8 = 0x6A
    static let persId: UInt8 = 0x50, binPersId: UInt8 = 0x51
}

/// Runs one pickle (PROTO … STOP) from `data` at `position`; `position` ends just past its STOP, where
/// the legacy format's next pickle starts.
struct PickleMachine {
    /// The deepest nesting of containers accepted. State dicts nest a few levels (a tensor's
    /// arguments, a few dicts of dicts); a deeper structure is damage or an attack (60,000 nested
    /// lists in a 120 KB file), refused before anything walks it.
    static let maxDepth = 1000

    private let data: Data
    private let source: String
    private(set) var position: Int
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var opcodeStart = 0
    private var opcode: UInt8 = 0

    init(data: Data, at position: Int = 0, source: String) {
        self.data = data
        self.position = position
        self.source = source
    }

    private func failure(_ reason: String) -> WeightError {
        let printable = (0x20..<0x7F).contains(opcode) ? " '\(Character(Unicode.Scalar(opcode)))'" : ""
        return .malformed("\(source): pickle opcode 0x\(String(opcode, radix: 16))\(printable) at byte \(opcodeStart): \(reason)")
    }

    // MARK: Reading operands (every read is bounds-checked: a truncated pickle throws, never traps)

    private mutating func take(_ n: Int) throws -> Data {
        guard n >= 0, n <= data.count - position else {
            throw failure("needs \(n) bytes of operand but the data ends at byte \(data.count) (truncated file?)")
        }
        let start = data.startIndex + position
        position += n
        return Data(data[start..<(start + n)])
    }

    private mutating func byte() throws -> UInt8 {
        guard position < data.count else { throw failure("needs an operand but the data ends at byte \(data.count) (truncated file?)") }
        defer { position += 1 }
        return data[data.startIndex + position]
    }

    private mutating func unsigned(_ width: Int) throws -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<width { value |= UInt64(try byte()) << (8 * UInt64(i)) }
        return value
    }

    /// A length operand, refused when larger than what is left (so no huge allocation is attempted).
    private mutating func length(_ width: Int) throws -> Int {
        let n = try unsigned(width)
        guard n <= UInt64(data.count - position) else { throw failure("length \(n) runs past the end of the data (truncated file?)") }
        return Int(n)
    }

    private mutating func line() throws -> String {
        let start = data.startIndex + position
        guard let newline = data[start...].firstIndex(of: 0x0A) else { throw failure("text operand has no end of line (truncated file?)") }
        position = newline - data.startIndex + 1
        return String(decoding: data[start..<newline], as: UTF8.self)
    }

    // MARK: The stack; MARK splits it, and nothing below the innermost mark may be popped

    /// Every value on the stack is within the depth limit: containers are checked as they are built
    /// (here) and as they are filled (`checkDepth` after APPEND, SETITEM and BUILD).
    private mutating func push(_ value: PickleValue) throws {
        try checkDepth(value)
        stack.append(value)
    }

    private func checkDepth(_ value: PickleValue) throws {
        guard value.depth <= Self.maxDepth else {
            throw failure("containers nest more than \(Self.maxDepth) levels deep; no state dict is, so the file is damaged or not a torch checkpoint")
        }
    }

    private mutating func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0) else { throw failure("pops an empty stack") }
        return stack.removeLast()
    }

    private func top() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let last = stack.last else { throw failure("needs a value on an empty stack") }
        return last
    }

    private mutating func popToMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw failure("has no MARK to pop to") }
        defer { stack.removeSubrange(mark...) }
        return Array(stack[mark...])
    }

    private func pairs(_ items: [PickleValue]) throws -> [(PickleValue, PickleValue)] {
        guard items.count % 2 == 0 else { throw failure("has an odd number (\(items.count)) of keys and values") }
        return stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }
    }

    // MARK: Running

    mutating func load() throws -> PickleValue {
        while true {
            opcodeStart = position
            opcode = 0
            opcode = try byte()
            switch opcode {
            case PickleOp.proto: _ = try byte()
            case PickleOp.frame: _ = try unsigned(8)  // framing only groups bytes for buffered reading
            case PickleOp.stop:
                let result = try pop()
                return result
            case PickleOp.mark: marks.append(stack.count)
            case PickleOp.pop:
                if let mark = marks.last, mark == stack.count { marks.removeLast() } else { _ = try pop() }
            case PickleOp.popMark: _ = try popToMark()
            case PickleOp.dup: try push(top())

            case PickleOp.emptyDict: try push(.dict(PickleDict()))
            case PickleOp.emptyList, PickleOp.emptySet: try push(.list(PickleList()))  // sets are read as lists
            case PickleOp.emptyTuple: try push(.tuple([]))
            case PickleOp.tuple: try push(.tuple(popToMark()))
            case PickleOp.tuple1, PickleOp.tuple2, PickleOp.tuple3:
                let n = Int(opcode - PickleOp.tuple1) + 1
                var items: [PickleValue] = []
                for _ in 0..<n { items.insert(try pop(), at: 0) }
                try push(.tuple(items))
            case PickleOp.list, PickleOp.frozenSet: try push(.list(PickleList(popToMark())))
            case PickleOp.dict:
                let dict = PickleDict()
                for (k, v) in try pairs(try popToMark()) { dict.set(k, v) }
                try push(.dict(dict))
            case PickleOp.append:
                let item = try pop()
                try append([item], to: try top())
            case PickleOp.appends, PickleOp.addItems:
                let items = try popToMark()
                try append(items, to: try top())
            case PickleOp.setItem:
                let value = try pop(), key = try pop()
                try setItems([(key, value)], in: try top())
            case PickleOp.setItems:
                let items = try pairs(try popToMark())
                try setItems(items, in: try top())

            case PickleOp.binInt: try push(.int(Int(Int32(truncatingIfNeeded: unsigned(4)))))
            case PickleOp.binInt1: try push(.int(Int(byte())))
            case PickleOp.binInt2: try push(.int(Int(unsigned(2))))
            case PickleOp.long1: try push(Self.decodeLong(take(length(1))))
            case PickleOp.long4:
                let n = Int32(truncatingIfNeeded: try unsigned(4))
                guard n >= 0, Int(n) <= data.count - position else { throw failure("bad LONG4 length \(n)") }
                try push(Self.decodeLong(take(Int(n))))
            case PickleOp.int:
                let text = try line()
                if text == "00" || text == "01" { try push(.bool(text == "01")) } else { try push(integer(text: text)) }
            case PickleOp.long: try push(integer(text: line()))
            case PickleOp.float:
                let text = try line()
                guard let d = Double(text) else { throw failure("FLOAT operand '\(text)' is not a number") }
                try push(.float(d))
            case PickleOp.binFloat: try push(.float(Double(bitPattern: take(8).reduce(0) { $0 << 8 | UInt64($1) })))  // big-endian
            case PickleOp.none: try push(.null)
            case PickleOp.newTrue: try push(.bool(true))
            case PickleOp.newFalse: try push(.bool(false))

            case PickleOp.binUnicode: try push(.string(String(decoding: take(length(4)), as: UTF8.self)))
            case PickleOp.shortBinUnicode: try push(.string(String(decoding: take(length(1)), as: UTF8.self)))
            case PickleOp.binUnicode8: try push(.string(String(decoding: take(length(8)), as: UTF8.self)))
            // Python 2 byte strings; torch.load decodes them as text, and Latin-1 decodes any bytes.
            case PickleOp.binString: try push(.string(String(take(length(4)).map { Character(Unicode.Scalar($0)) })))
            case PickleOp.shortBinString: try push(.string(String(take(length(1)).map { Character(Unicode.Scalar($0)) })))
            case PickleOp.binBytes: try push(.bytes(take(length(4))))
            case PickleOp.shortBinBytes: try push(.bytes(take(length(1))))
            case PickleOp.binBytes8, PickleOp.byteArray8: try push(.bytes(take(length(8))))

            case PickleOp.global:
                let module = try line(), name = try line()
                try push(.global(module: module, name: name))
            case PickleOp.stackGlobal:
                guard let name = try pop().text, let module = try pop().text else { throw failure("STACK_GLOBAL needs a module and a name string") }
                try push(.global(module: module, name: name))
            case PickleOp.reduce:
                let args = try pop(), callable = try pop()
                try push(call(callable, args))
            case PickleOp.newObj:
                let args = try pop(), cls = try pop()
                try push(newObject(cls, args))
            case PickleOp.newObjEx:
                _ = try pop()  // keyword arguments: none of the classes modelled here take any
                let args = try pop(), cls = try pop()
                try push(newObject(cls, args))
            case PickleOp.build:
                let state = try pop()
                // Only opaque objects keep their state; an OrderedDict's BUILD carries attributes such
                // as a state dict's `_metadata` (module versions), which are not entries.
                if case let .object(object) = try top() {
                    object.state = state
                    try checkDepth(.object(object))
                }

            case PickleOp.binPut: memo[Int(try byte())] = try top()
            case PickleOp.longBinPut: memo[Int(try unsigned(4))] = try top()
            case PickleOp.put: memo[try memoIndex(try line())] = try top()
            case PickleOp.memoize: memo[memo.count] = try top()
            case PickleOp.binGet: try push(recall(Int(byte())))
            case PickleOp.longBinGet: try push(recall(Int(unsigned(4))))
            case PickleOp.get: try push(recall(memoIndex(line())))

            case PickleOp.binPersId: try push(persistentLoad(pop()))
            case PickleOp.persId: try push(persistentLoad(.string(line())))
            default:
                throw failure("unsupported opcode (not one that torch.save writes; is this a torch checkpoint?)")
            }
        }
    }

    private func recall(_ index: Int) throws -> PickleValue {
        guard let value = memo[index] else { throw failure("memo entry \(index) was never stored") }
        return value
    }

    private func memoIndex(_ text: String) throws -> Int {
        guard let i = Int(text), i >= 0 else { throw failure("memo index '\(text)' is not a number") }
        return i
    }

    private func integer(text: String) throws -> PickleValue {
        let digits = text.hasSuffix("L") ? String(text.dropLast()) : text
        if let i = Int(digits) { return .int(i) }
        let unsigned = digits.hasPrefix("-") ? digits.dropFirst() : Substring(digits)
        guard !unsigned.isEmpty, unsigned.allSatisfy({ ("0"..."9").contains($0) }) else { throw failure("'\(text)' is not an integer") }
        return .bigInt(digits)
    }

    /// LONG1/LONG4 operands: little-endian two's complement of any length.
    static func decodeLong(_ bytes: Data) -> PickleValue {
        let b = [UInt8](bytes)
        guard let last = b.last else { return .int(0) }
        let negative = last & 0x80 != 0
        if b.count <= 8 {
            var value = b.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if negative && b.count < 8 { value |= ~0 << UInt64(8 * b.count) }
            return .int(Int(Int64(bitPattern: value)))
        }
        // Wider than 64 bits: hexadecimal of the magnitude (e.g. the legacy format's magic number).
        var magnitude = b
        if negative {  // negate: invert and add one
            var carry = 1
            for i in magnitude.indices {
                let v = Int(~magnitude[i]) + carry
                magnitude[i] = UInt8(v & 0xFF); carry = v >> 8
            }
        }
        let hex = magnitude.reversed().map(PickleValue.hex).joined().drop { $0 == "0" }
        return .bigInt((negative ? "-0x" : "0x") + (hex.isEmpty ? "0" : hex))
    }

    private func append(_ items: [PickleValue], to target: PickleValue) throws {
        guard case let .list(list) = target else { throw failure("appends to \(target.describe()), which is not a list") }
        list.append(contentsOf: items)
        try checkDepth(target)
    }

    private func setItems(_ items: [(PickleValue, PickleValue)], in target: PickleValue) throws {
        guard case let .dict(dict) = target else { throw failure("sets items on \(target.describe()), which is not a dict") }
        for (k, v) in items { dict.set(k, v) }
        try checkDepth(target)
    }

    // MARK: Calls: the few callables torch.save uses are modelled; anything else becomes opaque

    private func call(_ callable: PickleValue, _ argsValue: PickleValue, rebuilds: Int = 0) throws -> PickleValue {
        guard case let .tuple(argsTuple) = argsValue else { throw failure("REDUCE arguments are \(argsValue.describe()), not a tuple") }
        let args = argsTuple.items
        guard case let .global(module, name) = callable else {
            return .object(PickleObject(maker: callable.describe(), args: args))
        }
        let qualified = "\(module).\(name)"
        switch qualified {
        case "collections.OrderedDict", "builtins.dict", "__builtin__.dict", "collections.defaultdict":
            let dict = PickleDict()
            // dict(pairs) / OrderedDict(pairs); defaultdict's argument is its factory, not items.
            if qualified != "collections.defaultdict", let first = args.first {
                let items: [PickleValue]
                switch first {
                case let .list(l): items = l.items
                case let .tuple(t): items = t.items
                case let .dict(d): items = d.entries.map { .tuple([$0.key, $0.value]) }
                default: items = []
                }
                for item in items {
                    guard case let .tuple(pair) = item, pair.items.count == 2 else { throw failure("\(qualified) item \(item.describe()) is not a pair") }
                    dict.set(pair.items[0], pair.items[1])
                }
            }
            return .dict(dict)
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            return .tensor(try tensorRecipe(qualified, args))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state", "torch.nn.parameter.Parameter":
            // A Parameter is its data tensor plus requires_grad and hooks, which do not matter here.
            guard let data = args.first, case .tensor = data else { throw failure("\(qualified) expects a tensor first, got \(argsValue.describe())") }
            return data
        case "torch._tensor._rebuild_from_type_v2", "torch._tensor._rebuild_from_type":
            // (function, tensor subclass, arguments, state): the tensor is what the function builds.
            guard args.count >= 3 else { throw failure("\(qualified) expects (function, type, arguments, state), got \(argsValue.describe())") }
            // torch wraps a rebuild once (twice for a subclass of a subclass); a chain is bounded so
            // that a crafted one cannot recurse without end.
            guard rebuilds < 8 else { throw failure("\(qualified) is nested in itself more than 8 times; the file is damaged or not a torch checkpoint") }
            return try call(args[0], args[2], rebuilds: rebuilds + 1)
        case "torch.Size", "builtins.tuple", "__builtin__.tuple":
            return .tuple(Self.items(args.first))
        case "builtins.list", "builtins.set", "builtins.frozenset", "__builtin__.set":
            return .list(PickleList(Self.items(args.first)))
        case "_codecs.encode":
            // How protocol 2 stores Python 3 bytes: encode(text, 'latin1'), each character one byte.
            guard let text = args.first?.text else { throw failure("_codecs.encode expects a string, got \(argsValue.describe())") }
            return .bytes(Data(text.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) }))
        default:
            if (module == "torch._utils" && name.hasPrefix("_rebuild_")) || module == "torch._tensor" {
                throw failure("\(qualified) builds a kind of tensor this reader does not support (quantized, sparse, meta, nested or a subclass); convert it to a plain dense tensor and save again")
            }
            return .object(PickleObject(maker: qualified, args: args))
        }
    }

    private func newObject(_ cls: PickleValue, _ argsValue: PickleValue) throws -> PickleValue {
        if case let .global(module, name) = cls,
           ["collections.OrderedDict", "builtins.dict", "torch.nn.parameter.Parameter", "torch.Size"].contains("\(module).\(name)") {
            return try call(cls, argsValue)
        }
        guard case let .tuple(args) = argsValue else { throw failure("NEWOBJ arguments are \(argsValue.describe()), not a tuple") }
        return .object(PickleObject(maker: cls.describe(), args: args.items))
    }

    private static func items(_ value: PickleValue?) -> [PickleValue] {
        switch value {
        case let .tuple(t)?: t.items
        case let .list(l)?: l.items
        default: []
        }
    }

    private func tensorRecipe(_ function: String, _ args: [PickleValue]) throws -> TorchTensorRecipe {
        let described = PickleValue.tuple(args).describe()
        guard args.count >= 4, case let .storage(storage) = args[0], case let .int(offset) = args[1],
              let shape = Self.ints(args[2]), let strides = Self.ints(args[3]) else {
            throw failure("\(function) expects (storage, offset, size, stride, …), got \(described)")
        }
        guard shape.count == strides.count, offset >= 0, !shape.contains(where: { $0 < 0 }), !strides.contains(where: { $0 < 0 }) else {
            throw failure("\(function) has an inconsistent size \(shape), stride \(strides) or offset \(offset)")
        }
        return TorchTensorRecipe(storage: storage, offset: offset, shape: shape, strides: strides)
    }

    private static func ints(_ value: PickleValue) -> [Int]? {
        let items: [PickleValue]
        switch value {
        case let .tuple(t): items = t.items
        case let .list(l): items = l.items
        default: return nil
        }
        var result: [Int] = []
        for item in items {
            guard case let .int(i) = item else { return nil }
            result.append(i)
        }
        return result
    }

    /// torch.save's persistent ids for storages: ('storage', storage type, key, location, numel) in
    /// the zip format, plus view metadata (view key, offset, size) or None in the legacy format.
    private func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        guard case let .tuple(pidTuple) = pid, case let fields = pidTuple.items, fields.first?.text == "storage" else {
            return .object(PickleObject(maker: "persistent id", args: [pid]))  // e.g. the legacy format's module sources
        }
        guard fields.count == 5 || fields.count == 6 else { throw failure("storage id \(pid.describe()) has \(fields.count) fields, not 5 or 6") }
        guard let dtype = Self.dtype(ofStorageType: fields[1]) else {
            throw failure("storage type \(fields[1].describe()) is not supported (float64/32/16, bfloat16, int64/32/16/8, uint8, bool are)")
        }
        let key: String
        switch fields[2] {
        case let .int(i): key = String(i)
        default:
            guard let text = fields[2].text else { throw failure("storage key \(fields[2].describe()) is not a string") }
            key = text
        }
        var ref = TorchStorageRef(key: key, dtype: dtype)
        if fields.count == 6, case let .tuple(viewTuple) = fields[5] {
            let view = viewTuple.items
            guard view.count == 3, case let .int(offset) = view[1], case let .int(size) = view[2], offset >= 0, size >= 0 else {
                throw failure("storage view \(fields[5].describe()) is not (key, offset, size)")
            }
            ref.elementOffset = offset
            ref.elementCount = size
        }
        return .storage(ref)
    }

    /// The element type of a storage class (`torch.FloatStorage`, `torch.cuda.HalfStorage`) or of a
    /// dtype (`torch.float32`), as PyTorch 2.x may name either.
    static func dtype(ofStorageType value: PickleValue) -> StoredDType? {
        guard case let .global(module, name) = value, module == "torch" || module.hasPrefix("torch.") else { return nil }
        switch name {
        case "FloatStorage", "float32", "float": return .f32
        case "HalfStorage", "float16", "half": return .f16
        case "BFloat16Storage", "bfloat16": return .bf16
        case "DoubleStorage", "float64", "double": return .f64
        case "LongStorage", "int64", "long": return .i64
        case "IntStorage", "int32", "int": return .i32
        case "ShortStorage", "int16", "short": return .i16
        case "CharStorage", "int8": return .i8
        case "ByteStorage", "uint8", "UntypedStorage": return .u8
        case "BoolStorage", "bool": return .bool
        default: return nil
        }
    }
}

/// Writes pickle protocol 2 with only the opcodes torch.load's weights_only unpickler accepts
/// (so no SHORT_BINUNICODE, BINBYTES or MEMOIZE).
struct PickleEmitter {
    private(set) var bytes = Data([PickleOp.proto, 2])

    mutating func op(_ code: UInt8) { bytes.append(code) }
    mutating func raw(_ data: [UInt8]) { bytes.append(contentsOf: data) }

    mutating func int(_ value: Int) {
        switch value {
        case 0...0xFF: raw([PickleOp.binInt1, UInt8(value)])
        case 0x100...0xFFFF: raw([PickleOp.binInt2, UInt8(value & 0xFF), UInt8(value >> 8)])
        case Int(Int32.min)...Int(Int32.max): op(PickleOp.binInt); littleEndian(UInt64(bitPattern: Int64(value)), 4)
        default:
            // LONG1: the shortest little-endian two's complement that keeps the sign.
            var b = withUnsafeBytes(of: Int64(value).littleEndian, Array.init)
            while b.count > 1, let last = b.last, (last == 0 && b[b.count - 2] & 0x80 == 0) || (last == 0xFF && b[b.count - 2] & 0x80 != 0) {
                b.removeLast()
            }
            raw([PickleOp.long1, UInt8(b.count)] + b)
        }
    }

    mutating func float(_ value: Double) {
        op(PickleOp.binFloat)
        raw(withUnsafeBytes(of: value.bitPattern.bigEndian, Array.init))
    }

    mutating func string(_ value: String) {
        op(PickleOp.binUnicode)
        littleEndian(UInt64(value.utf8.count), 4)
        bytes.append(contentsOf: value.utf8)
    }

    mutating func global(_ module: String, _ name: String) {
        op(PickleOp.global)
        bytes.append(contentsOf: "\(module)\n\(name)\n".utf8)
    }

    /// A tuple of `count` items written by `items`: TUPLE1-3 for short ones as Python does.
    mutating func tuple(_ count: Int, _ items: (inout PickleEmitter) throws -> Void) rethrows {
        if count == 0 { op(PickleOp.emptyTuple); return }
        if count > 3 { op(PickleOp.mark) }
        try items(&self)
        op(count > 3 ? PickleOp.tuple : PickleOp.tuple1 + UInt8(count - 1))
    }

    mutating func ints(_ values: [Int]) { tuple(values.count) { e in values.forEach { e.int($0) } } }

    /// `collections.OrderedDict()`, empty; items follow with SETITEMS.
    mutating func orderedDict() {
        global("collections", "OrderedDict")
        op(PickleOp.emptyTuple)
        op(PickleOp.reduce)
    }

    mutating func value(_ value: TorchPickleValue) throws {
        switch value {
        case .null: op(PickleOp.none)
        case let .bool(b): op(b ? PickleOp.newTrue : PickleOp.newFalse)
        case let .int(i): int(i)
        case let .float(d): float(d)
        case let .string(s): string(s)
        case .bytes, .opaque:
            throw WeightError.malformed("cannot store \(value) in a torch checkpoint: only None, bool, int, float and str extras can be loaded with torch.load(weights_only=True)")
        }
    }

    /// A tensor exactly as torch.save pickles one: `_rebuild_tensor_v2(storage, 0, size, stride,
    /// False, OrderedDict())`, the storage a persistent id ('storage', torch.XStorage, key, 'cpu', numel).
    mutating func tensor(_ tensor: HostTensor, storageKey: String) {
        var strides = [Int](repeating: 1, count: tensor.shape.count)
        for d in stride(from: tensor.shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * tensor.shape[d + 1] }
        global("torch._utils", "_rebuild_tensor_v2")
        tuple(6) { e in
            e.tuple(5) { e in
                e.string("storage")
                e.global("torch", Self.storageClass(tensor.dtype))
                e.string(storageKey)
                e.string("cpu")
                e.int(tensor.elementCount)
            }
            e.op(PickleOp.binPersId)
            e.int(0)
            e.ints(tensor.shape)
            e.ints(strides)
            e.op(PickleOp.newFalse)
            e.orderedDict()
        }
        op(PickleOp.reduce)
    }

    static func storageClass(_ dtype: StoredDType) -> String {
        switch dtype {
        case .f32: "FloatStorage"
        case .f16: "HalfStorage"
        case .bf16: "BFloat16Storage"
        case .f64: "DoubleStorage"
        case .i64: "LongStorage"
        case .i32: "IntStorage"
        case .i16: "ShortStorage"
        case .i8: "CharStorage"
        case .u8: "ByteStorage"
        case .bool: "BoolStorage"
        }
    }

    mutating func littleEndian(_ value: UInt64, _ width: Int) {
        for i in 0..<width { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }
}
