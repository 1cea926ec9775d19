#if canImport(FoundationEssentials)
import FoundationEssentials  // as the rest of Inference: Data and URL without ICU
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc  // fopen/fwrite/fsync/rename: streaming a multi-gigabyte file out without FileHandle
#elseif canImport(Darwin)
import Darwin
#endif

/// A PyTorch checkpoint written by `torch.save`, read without Python: the zip format (PyTorch ≥ 1.6)
/// or the legacy format (consecutive pickles followed by raw storages). Every tensor in the saved
/// object is collected under its flattened key (`state_dict.layer.weight`), every plain value in
/// `scalars`. Tensors are copied out of a memory map, so a multi-gigabyte file is never read whole.
public struct TorchCheckpoint: Sendable {
    /// Every tensor of the file, flattened: nested dict keys joined with "." (an OrderedDict is a dict),
    /// list and tuple elements keyed by index.
    public var tensors: [String: HostTensor]
    /// Non-tensor leaves (ints, floats, strings, bools, None, opaque objects), flattened the same way.
    public var scalars: [String: TorchPickleValue]
    /// The file read (or the `source` given with the data), named in errors about keys.
    public let file: String?

    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw WeightError.unreadable(path: url.path, reason: "\(error)")
        }
        try self.init(data: data, source: url.path)
    }

    public init(data: Data, source: String) throws {
        let (root, storage) = try Self.load(data, source: source)
        var flattener = TorchFlattener(source: source, storage: storage)
        try flattener.visit(root, path: "", depth: 0)
        tensors = flattener.tensors
        scalars = flattener.scalars
        file = source
    }

    /// Sorted tensor names.
    public var names: [String] { tensors.keys.sorted() }

    /// The tensors under the first of `prefixes` that any name starts with, the prefix removed; ""
    /// matches everything (e.g. `["state_dict.", "model_state_dict.", ""]`).
    public func stateDict(under prefixes: [String]) -> [String: HostTensor] {
        for prefix in prefixes {
            if prefix.isEmpty { return tensors }
            let found = tensors.filter { $0.key.hasPrefix(prefix) }
            if !found.isEmpty {
                return Dictionary(uniqueKeysWithValues: found.map { (String($0.key.dropFirst(prefix.count)), $0.value) })
            }
        }
        return [:]
    }

    /// `stateDict(under:)` as an archive that names this checkpoint's file in its errors.
    public func stateDictArchive(under prefixes: [String]) -> TensorDictionary {
        TensorDictionary(stateDict(under: prefixes), file: file)
    }

    public func shape(of name: String) -> [Int]? { tensors[name]?.shape }

    public func tensor(_ name: String) throws -> HostTensor {
        guard let t = tensors[name] else { throw WeightError.missing(key: name, similar: WeightError.similar(to: name, in: names), file: file) }
        return t
    }

    // MARK: Reading

    private static let zipMagic: [UInt8] = [0x50, 0x4B, 0x03, 0x04]
    /// The legacy format's first pickle holds this magic number (wider than 64 bits, so kept as hex text).
    private static let legacyMagic = "0x1950a86a20f9469cfc6c"

    /// The unpickled object and a way to read a storage's bytes by key.
    private static func load(_ data: Data, source: String) throws -> (PickleValue, (String) throws -> Data) {
        let head = [UInt8](data.prefix(16))
        if head.starts(with: zipMagic) || head.starts(with: [0x50, 0x4B, 0x05, 0x06]) { return try loadZip(data, source: source) }
        if data.count >= 262, Data(data.dropFirst(257).prefix(5)) == Data("ustar".utf8) {
            throw WeightError.malformed("\(source): tar-format torch checkpoint is not supported; re-save it with torch.save in a current PyTorch")
        }
        if head.first == PickleOp.proto { return try loadLegacy(data, source: source) }
        guard !data.isEmpty else { throw WeightError.malformed("\(source): the file is empty") }
        let hex = head.prefix(8).map(PickleValue.hex).joined(separator: " ")
        let hint = head.count > 8 && head[8] == UInt8(ascii: "{") ? " (it looks like safetensors; read it with SafeTensors)" : ""
        throw WeightError.malformed("\(source): not a PyTorch checkpoint: it starts with \(hex), neither a zip archive (torch.save since PyTorch 1.6) nor a pickle (older torch.save)\(hint)")
    }

    private static func loadZip(_ data: Data, source: String) throws -> (PickleValue, (String) throws -> Data) {
        let archive = try TorchZipArchive(data: data, source: source)
        // The top folder is named after the file at save time ("archive" by default): find data.pkl by suffix.
        guard let pickleName = archive.names.filter({ $0 == "data.pkl" || $0.hasSuffix("/data.pkl") }).min(by: { $0.count < $1.count }) else {
            let listed = archive.names.prefix(6).joined(separator: ", ")
            throw WeightError.malformed("\(source): the zip archive has no data.pkl (it has \(listed)\(archive.names.count > 6 ? ", …" : "")), so it is not a torch.save checkpoint")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        if archive.entries[prefix + "byteorder"] != nil {
            let order = String(decoding: try archive.contents(of: prefix + "byteorder"), as: UTF8.self)
            guard order.filter({ !$0.isWhitespace }) != "big" else {
                throw WeightError.malformed("\(source): the storages are big-endian; load and re-save the checkpoint on a little-endian machine")
            }
        }
        var machine = PickleMachine(data: try archive.contents(of: pickleName, verifyingChecksum: true), source: "\(source) (\(pickleName))")
        let root = try machine.load()
        return (root, { key in
            let name = prefix + "data/" + key
            guard archive.entries[name] != nil else { throw WeightError.malformed("\(source): storage \(key) is missing (no zip entry \(name))") }
            return try archive.contents(of: name)
        })
    }

    /// Legacy layout: pickles of the magic number, the protocol version (1001) and system info, the
    /// object, the list of storage keys; then per key an 8-byte little-endian element count and the bytes.
    private static func loadLegacy(_ data: Data, source: String) throws -> (PickleValue, (String) throws -> Data) {
        var position = 0
        func next(_ what: String) throws -> PickleValue {
            var machine = PickleMachine(data: data, at: position, source: "\(source) (\(what))")
            let value = try machine.load()
            position = machine.position
            return value
        }
        let magic = try next("magic number")
        guard case let .bigInt(text) = magic, text == legacyMagic else {
            throw WeightError.malformed("\(source): a pickle, but its first value \(magic.describe()) is not torch.save's magic number; not a torch checkpoint")
        }
        let version = try next("protocol version")
        guard case .int(1001) = version else {
            throw WeightError.malformed("\(source): legacy protocol version \(version.describe()) is not supported (1001 is)")
        }
        if case let .dict(info) = try next("system info"), case .bool(false)? = info.value(forString: "little_endian") {
            throw WeightError.malformed("\(source): saved on a big-endian machine; load and re-save the checkpoint on a little-endian one")
        }
        var dtypes: [String: StoredDType] = [:], seen: Set<ObjectIdentifier> = []
        let root = try next("object")
        Self.collectStorageTypes(root, into: &dtypes, seen: &seen, depth: 0)
        guard case let .list(keyList) = try next("storage keys") else {
            throw WeightError.malformed("\(source): the storage key list after the object is not a list")
        }
        var storages: [String: Data] = [:]
        for item in keyList.items {
            guard let key = item.text else { throw WeightError.malformed("\(source): storage key \(item.describe()) is not a string") }
            // A storage no tensor refers to still occupies its bytes; u8 then only skips them.
            let itemSize = (dtypes[key] ?? .u8).byteSize
            guard data.count - position >= 8 else { throw WeightError.malformed("\(source): storage \(key)'s size is missing at byte \(position) (truncated file?)") }
            let start = data.startIndex + position
            let count = data[start..<(start + 8)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let available = UInt64(data.count - position - 8)
            guard count <= available / UInt64(itemSize) else {
                throw WeightError.malformed("\(source): storage \(key) needs \(count) elements of \(itemSize) bytes at byte \(position + 8) but only \(available) bytes remain (truncated file?)")
            }
            let byteCount = Int(count) * itemSize
            storages[key] = data[(start + 8)..<(start + 8 + byteCount)]  // a slice: no copy yet
            position += 8 + byteCount
        }
        return (root, { key in
            guard let bytes = storages[key] else { throw WeightError.malformed("\(source): storage \(key) is referenced but not stored in the file") }
            return bytes
        })
    }

    /// Storage keys and types, needed before the legacy format's storages can be sized. Each container
    /// is walked once (`seen`): through the memo a small pickle can share one container exponentially often.
    private static func collectStorageTypes(_ value: PickleValue, into dtypes: inout [String: StoredDType], seen: inout Set<ObjectIdentifier>, depth: Int) {
        guard depth < 100 else { return }
        func walk(_ object: AnyObject, _ items: [PickleValue]) {
            guard seen.insert(ObjectIdentifier(object)).inserted else { return }
            for item in items { collectStorageTypes(item, into: &dtypes, seen: &seen, depth: depth + 1) }
        }
        switch value {
        case let .tensor(t): dtypes[t.storage.key] = t.storage.dtype
        case let .storage(s): dtypes[s.key] = s.dtype
        case let .tuple(t): walk(t, t.items)
        case let .list(l): walk(l, l.items)
        case let .dict(d): walk(d, d.entries.map(\.value))
        case let .object(o): walk(o, o.args + [o.state ?? .null])
        default: break
        }
    }

    // MARK: Writing

    /// A flat state dict in torch.save's zip format: an OrderedDict of tensors, or with `key` a dict
    /// `{key: OrderedDict, **extras}`. Names are sorted so that equal inputs give equal bytes.
    public static func serialize(_ tensors: [String: HostTensor], under key: String? = nil, extras: [String: TorchPickleValue] = [:]) throws -> Data {
        var out = Data()
        try encode(tensors, under: key, extras: extras) { out.append($0) }
        return out
    }

    /// Writes through a temporary file in the same folder and a rename, so a reader never sees half a
    /// file; storages stream straight from the tensors (no second copy of a multi-gigabyte checkpoint).
    public static func write(_ tensors: [String: HostTensor], under key: String? = nil, extras: [String: TorchPickleValue] = [:], to url: URL) throws {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).partial").path
        guard let file = fopen(temporary, "wb") else { throw writeFailure(temporary) }
        var open = true
        do {
            try encode(tensors, under: key, extras: extras) { chunk in
                let written = chunk.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
                guard written == chunk.count else { throw writeFailure(temporary) }
            }
            guard fflush(file) == 0, fsync(fileno(file)) == 0 else { throw writeFailure(temporary) }
            open = false
            guard fclose(file) == 0 else { throw writeFailure(temporary) }
            guard rename(temporary, url.path) == 0 else { throw writeFailure(url.path) }
        } catch {
            if open { fclose(file) }
            unlink(temporary)
            throw error
        }
    }

    /// The error Data.write would throw for the current errno, naming the file.
    private static func writeFailure(_ path: String) -> CocoaError {
        let code = errno
        let kind: CocoaError.Code = switch code {
        case ENOSPC: .fileWriteOutOfSpace
        case EACCES, EPERM: .fileWriteNoPermission
        case EROFS: .fileWriteVolumeReadOnly
        case ENOENT: .fileNoSuchFile
        default: .fileWriteUnknown
        }
        return CocoaError(kind, userInfo: ["NSFilePath": path, "NSUnderlyingError": POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)])
    }

    /// The archive's bytes in order, handed to `sink` piece by piece (storages are not copied).
    static func encode(_ tensors: [String: HostTensor], under key: String?, extras: [String: TorchPickleValue],
                       forceZip64: Bool = false, sink: (Data) throws -> Void) throws {
        let names = tensors.keys.sorted()
        if let key, extras[key] != nil { throw WeightError.malformed("extra value \"\(key)\" would replace the state dict stored under the same key") }
        if key == nil, let clash = names.first(where: { extras[$0] != nil }) { throw WeightError.malformed("extra value \"\(clash)\" has the name of a tensor") }

        let storageKeys = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, String($0)) })
        var pickle = PickleEmitter()
        func stateDict(_ p: inout PickleEmitter, withExtras: Bool) throws {
            p.orderedDict()
            let entries = names.map { ($0, true) } + (withExtras ? extras.keys.map { ($0, false) } : [])
            guard !entries.isEmpty else { return }
            p.op(PickleOp.mark)
            for (name, isTensor) in entries.sorted(by: { $0.0 < $1.0 }) {
                p.string(name)
                if isTensor, let t = tensors[name], let storageKey = storageKeys[name] { p.tensor(t, storageKey: storageKey) }
                else if let v = extras[name] { try p.value(v) }
            }
            p.op(PickleOp.setItems)
        }
        if let key {
            pickle.op(PickleOp.emptyDict)
            pickle.op(PickleOp.mark)
            for top in ([key] + extras.keys).sorted() {
                pickle.string(top)
                if top == key { try stateDict(&pickle, withExtras: false) } else if let v = extras[top] { try pickle.value(v) }
            }
            pickle.op(PickleOp.setItems)
        } else {
            try stateDict(&pickle, withExtras: true)
        }
        pickle.op(PickleOp.stop)

        // The entries torch.save writes, in its order; storage i belongs to the i-th sorted name.
        var zip = TorchZipWriter(forceZip64: forceZip64)
        func add(_ name: String, _ contents: Data) throws {
            try sink(zip.localHeader(name: name, contents: contents))
            try sink(contents)
        }
        try add("archive/data.pkl", pickle.bytes)
        try add("archive/byteorder", Data("little".utf8))
        for (index, name) in names.enumerated() { try add("archive/data/\(index)", tensors[name]?.bytes ?? Data()) }
        try add("archive/version", Data("3\n".utf8))
        try sink(zip.centralDirectory())
    }
}

extension TorchCheckpoint: TensorArchive {}

/// Walks the unpickled object, building tensors from their storages and collecting leaves by path.
private struct TorchFlattener {
    let source: String
    let storage: (String) throws -> Data
    var tensors: [String: HostTensor] = [:]
    var scalars: [String: TorchPickleValue] = [:]
    /// What the walk may still produce: one per value visited plus the length of its key. Through the
    /// memo a small pickle can refer to one container from many places, level after level, so the
    /// values reachable by path grow exponentially with depth; no real checkpoint comes near this.
    private var budget = 1 << 28

    init(source: String, storage: @escaping (String) throws -> Data) {
        self.source = source
        self.storage = storage
    }

    mutating func visit(_ value: PickleValue, path: String, depth: Int) throws {
        guard depth < 100 else {
            throw WeightError.malformed("\(source): \(path.prefix(200)) is nested more than 100 levels deep; the file is damaged or not a state dict")
        }
        budget -= 1 + path.utf8.count
        guard budget >= 0 else {
            throw WeightError.malformed("\(source): the saved object holds more than \(1 << 28) values and key characters (one part shared many times over?); the file is damaged or not a state dict")
        }
        func child(_ key: String) -> String { path.isEmpty ? key : path + "." + key }
        switch value {
        case let .dict(d):
            for (key, v) in d.entries { try visit(v, path: child(Self.keyText(key)), depth: depth + 1) }
        case let .list(l):
            for (i, v) in l.items.enumerated() { try visit(v, path: child(String(i)), depth: depth + 1) }
        case let .tuple(t):
            for (i, v) in t.items.enumerated() { try visit(v, path: child(String(i)), depth: depth + 1) }
        case let .tensor(recipe): tensors[path] = try build(recipe, name: path)
        case .null: scalars[path] = .null
        case let .bool(b): scalars[path] = .bool(b)
        case let .int(i): scalars[path] = .int(i)
        case let .float(d): scalars[path] = .float(d)
        case let .string(s): scalars[path] = .string(s)
        case let .bytes(b): scalars[path] = .bytes(b)
        case .bigInt, .global, .storage, .object: scalars[path] = .opaque(value.describe())
        }
    }

    static func keyText(_ key: PickleValue) -> String {
        switch key {
        case let .string(s): s
        case let .bytes(b): String(decoding: b, as: UTF8.self)
        default: key.describe()
        }
    }

    /// The tensor's elements gathered from its storage: one copy when row-major contiguous, element by
    /// element otherwise (a transposed view, a column slice).
    func build(_ recipe: TorchTensorRecipe, name: String) throws -> HostTensor {
        let dtype = recipe.storage.dtype, itemSize = dtype.byteSize
        let described = "tensor \(name) (\(dtype.rawValue), size \(recipe.shape), stride \(recipe.strides), offset \(recipe.offset))"
        var count = 1
        for n in recipe.shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow, product <= Int.max / 8 else { throw WeightError.malformed("\(source): \(described) has too many elements") }
            count = product
        }
        if count == 0 { return try HostTensor(dtype: dtype, shape: recipe.shape, bytes: Data()) }

        let raw = try storage(recipe.storage.key)
        let rootCount = raw.count / itemSize
        let viewStart = recipe.storage.elementOffset
        let viewCount = recipe.storage.elementCount ?? max(0, rootCount - viewStart)
        guard viewStart <= rootCount, viewCount <= rootCount - viewStart else {
            // (Not viewStart + viewCount: both come from the file, and the sum may overflow.)
            throw WeightError.malformed("\(source): \(described) uses \(viewCount) elements from element \(viewStart) of storage \(recipe.storage.key), which has \(rootCount) (file corrupt or truncated?)")
        }
        // The last element read is offset + Σ (size - 1) · stride; sizes and strides are ≥ 0 and count ≥ 1.
        var last = recipe.offset
        for (n, s) in zip(recipe.shape, recipe.strides) {
            let (step, o1) = (n - 1).multipliedReportingOverflow(by: s)
            let (sum, o2) = last.addingReportingOverflow(step)
            guard !o1, !o2 else { throw WeightError.malformed("\(source): \(described) reaches past any storage") }
            last = sum
        }
        guard last < viewCount else {
            throw WeightError.malformed("\(source): \(described) reads element \(last) of storage \(recipe.storage.key), which has only \(viewCount) (file corrupt or truncated?)")
        }
        let first = viewStart + recipe.offset
        let rank = recipe.shape.count
        var contiguous = true, expected = 1
        for d in stride(from: rank - 1, through: 0, by: -1) where recipe.shape[d] != 1 {
            if recipe.strides[d] != expected { contiguous = false; break }
            expected *= recipe.shape[d]
        }
        let lower = raw.startIndex + first * itemSize
        if contiguous { return try HostTensor(dtype: dtype, shape: recipe.shape, bytes: Data(raw[lower..<(lower + count * itemSize)])) }

        var out = Data(count: count * itemSize)
        raw.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                guard let from = src.baseAddress, let to = dst.baseAddress else { return }
                var index = [Int](repeating: 0, count: rank)
                var element = first
                for i in 0..<count {
                    (to + i * itemSize).copyMemory(from: from + element * itemSize, byteCount: itemSize)
                    // Advance the multi-index like an odometer, last dimension fastest. Wrapping
                    // arithmetic: stepping past the end of a dimension of size 1 adds its stride, which
                    // the file may set near Int.max; the subtraction right after restores the element,
                    // which the check above keeps within the storage, so the wrapped sum is exact.
                    var d = rank - 1
                    while d >= 0 {
                        index[d] += 1
                        element &+= recipe.strides[d]
                        if index[d] < recipe.shape[d] { break }
                        element &-= recipe.strides[d] &* recipe.shape[d]
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return try HostTensor(dtype: dtype, shape: recipe.shape, bytes: out)
    }
}

// MARK: - ZIP (stored entries, ZIP64) as torch.save writes it

/// A zip archive's directory read from its central directory; entry data is sliced from `data` in place.
struct TorchZipArchive {
    struct Entry {
        var method: UInt16, flags: UInt16, crc: UInt32
        var compressedSize: Int, size: Int, headerOffset: Int
    }

    let data: Data
    let source: String
    private(set) var entries: [String: Entry] = [:]
    /// Entry names in central directory order.
    private(set) var names: [String] = []

    init(data: Data, source: String) throws {
        self.data = data
        self.source = source
        let truncatedHint = "no zip end-of-central-directory record: the file is truncated (an interrupted download or copy?) or not a zip archive"
        guard data.count >= 22 else { throw WeightError.malformed("\(source): \(data.count) bytes; \(truncatedHint)") }
        // The end record is the last 22 bytes plus a comment of up to 64 KiB: search backwards.
        var end: Int?
        var candidate = data.count - 22
        while candidate >= max(0, data.count - 22 - 0xFFFF) {
            if u32(candidate) == 0x0605_4B50, let comment = u16(candidate + 20), candidate + 22 + Int(comment) == data.count { end = candidate; break }
            candidate -= 1
        }
        guard let end, let count16 = u16(end + 10), let size32 = u32(end + 12), let offset32 = u32(end + 16) else {
            throw WeightError.malformed("\(source): \(truncatedHint)")
        }
        var entryCount = UInt64(count16), directorySize = UInt64(size32), directoryOffset = UInt64(offset32)
        // ZIP64: a locator just before the end record points at the 64-bit end record.
        if end >= 20, u32(end - 20) == 0x0706_4B50 {
            guard let recordOffset = u64(end - 12).flatMap({ Int(exactly: $0) }), u32(recordOffset) == 0x0606_4B50,
                  let count64 = u64(recordOffset + 32), let size64 = u64(recordOffset + 40), let offset64 = u64(recordOffset + 48) else {
                throw WeightError.malformed("\(source): the zip64 end-of-central-directory record is missing or cut short (truncated file?)")
            }
            (entryCount, directorySize, directoryOffset) = (count64, size64, offset64)
        } else if count16 == 0xFFFF || size32 == 0xFFFF_FFFF || offset32 == 0xFFFF_FFFF {
            throw WeightError.malformed("\(source): the zip end record defers to a zip64 record that is not there (corrupt file)")
        }
        guard directoryOffset <= UInt64(end), directorySize <= UInt64(end) - directoryOffset, entryCount <= directorySize / 46 else {
            throw WeightError.malformed("\(source): the zip central directory (\(entryCount) entries, \(directorySize) bytes at \(directoryOffset)) does not fit before byte \(end) (truncated or corrupt file)")
        }
        var p = Int(directoryOffset)
        for i in 0..<Int(entryCount) {
            guard u32(p) == 0x0201_4B50, let flags = u16(p + 8), let method = u16(p + 10), let crc = u32(p + 16),
                  let compressed32 = u32(p + 20), let size32 = u32(p + 24), let nameLength = u16(p + 28),
                  let extraLength = u16(p + 30), let commentLength = u16(p + 32), let header32 = u32(p + 42),
                  p + 46 + Int(nameLength) + Int(extraLength) <= data.count else {
                throw WeightError.malformed("\(source): zip central directory entry \(i) at byte \(p) is damaged")
            }
            let nameStart = data.startIndex + p + 46
            let name = String(decoding: data[nameStart..<(nameStart + Int(nameLength))], as: UTF8.self)
            var sizes = [UInt64(size32), UInt64(compressed32), UInt64(header32)]
            if sizes.contains(0xFFFF_FFFF) {
                // The zip64 extra field holds, in this order, exactly the values saturated above.
                guard let extended = zip64Fields(at: p + 46 + Int(nameLength), length: Int(extraLength)) else {
                    throw WeightError.malformed("\(source): zip entry \(name) needs zip64 sizes but has no zip64 extra field")
                }
                var next = extended.makeIterator()
                for k in sizes.indices where sizes[k] == 0xFFFF_FFFF {
                    guard let v = next.next() else { throw WeightError.malformed("\(source): zip entry \(name)'s zip64 extra field is too short") }
                    sizes[k] = v
                }
            }
            guard let size = Int(exactly: sizes[0]), let compressedSize = Int(exactly: sizes[1]), let headerOffset = Int(exactly: sizes[2]) else {
                throw WeightError.malformed("\(source): zip entry \(name) has impossible sizes \(sizes)")
            }
            entries[name] = Entry(method: method, flags: flags, crc: crc, compressedSize: compressedSize, size: size, headerOffset: headerOffset)
            names.append(name)
            p += 46 + Int(nameLength) + Int(extraLength) + Int(commentLength)
        }
    }

    /// The 64-bit values of the zip64 extra field (id 1) among the extra fields at `start`.
    private func zip64Fields(at start: Int, length: Int) -> [UInt64]? {
        var p = start
        while p + 4 <= start + length, let id = u16(p), let size = u16(p + 2) {
            if id == 1 { return (0..<Int(size) / 8).compactMap { u64(p + 4 + 8 * $0) } }
            p += 4 + Int(size)
        }
        return nil
    }

    /// Where `name`'s bytes start: after its local header, whose name and extra lengths may differ from
    /// the central directory's (torch pads the local extra field to align storages).
    func dataOffset(of name: String) throws -> Int {
        guard let e = entries[name] else { throw WeightError.malformed("\(source): no zip entry \(name)") }
        guard e.flags & 1 == 0 else { throw WeightError.malformed("\(source): zip entry \(name) is encrypted") }
        guard e.method == 0 else {
            let kind = e.method == 8 ? " (deflate)" : ""
            throw WeightError.malformed("\(source): zip entry \(name) is compressed with method \(e.method)\(kind); torch.save stores entries uncompressed, so this archive was re-packed by another tool: unzip it and zip again with no compression (zip -0), or re-save it with torch.save")
        }
        guard u32(e.headerOffset) == 0x0403_4B50, let nameLength = u16(e.headerOffset + 26), let extraLength = u16(e.headerOffset + 28) else {
            throw WeightError.malformed("\(source): zip entry \(name)'s local header at byte \(e.headerOffset) is missing (truncated or corrupt file)")
        }
        let start = e.headerOffset + 30 + Int(nameLength) + Int(extraLength)
        guard e.compressedSize == e.size, start <= data.count, e.size <= data.count - start else {
            // (Not start + size: the size comes from the file, and the sum may overflow.)
            throw WeightError.malformed("\(source): zip entry \(name) needs \(e.size) bytes from byte \(start) but the file has \(data.count) (truncated file?)")
        }
        return start
    }

    /// The entry's bytes as a slice of the mapped file (no copy).
    func contents(of name: String, verifyingChecksum: Bool = false) throws -> Data {
        let start = try dataOffset(of: name)
        let size = entries[name]?.size ?? 0
        let bytes = data[(data.startIndex + start)..<(data.startIndex + start + size)]
        if verifyingChecksum, let e = entries[name], TorchCRC32.checksum(bytes) != e.crc {
            throw WeightError.malformed("\(source): zip entry \(name) fails its CRC-32 check (corrupt file)")
        }
        return bytes
    }

    private func u16(_ offset: Int) -> UInt16? { littleEndian(offset, 2).map { UInt16($0) } }
    private func u32(_ offset: Int) -> UInt32? { littleEndian(offset, 4).map { UInt32($0) } }
    private func u64(_ offset: Int) -> UInt64? { littleEndian(offset, 8) }

    private func littleEndian(_ offset: Int, _ width: Int) -> UInt64? {
        guard offset >= 0, offset <= data.count - width else { return nil }
        var value: UInt64 = 0
        for i in 0..<width { value |= UInt64(data[data.startIndex + offset + i]) << (8 * UInt64(i)) }
        return value
    }
}

/// Writes stored (uncompressed) zip entries whose data starts on 64-byte boundaries, as PyTorch's
/// writer does so that storages can be memory-mapped in place; ZIP64 records once sizes or offsets
/// pass 32 bits (or always, with `forceZip64`, to test that path on small data).
struct TorchZipWriter {
    static let alignment = 64
    private struct Record { var name: Data, crc: UInt32, size: Int, offset: Int }
    private var records: [Record] = []
    private var offset = 0
    let forceZip64: Bool

    init(forceZip64: Bool = false) { self.forceZip64 = forceZip64 }

    /// The local header for `contents`, which the caller writes right after it.
    mutating func localHeader(name: String, contents: Data) -> Data {
        let nameBytes = Data(name.utf8)
        let zip64 = forceZip64 || contents.count >= 0xFFFF_FFFF
        var extra = Data()
        if zip64 { extra.torchLE(1, 2); extra.torchLE(16, 2); extra.torchLE(UInt64(contents.count), 8); extra.torchLE(UInt64(contents.count), 8) }
        // Padding in an extra field (id "FB", as PyTorch's writer uses) puts the data on the boundary.
        let unpadded = offset + 30 + nameBytes.count + extra.count + 4
        let padding = (Self.alignment - unpadded % Self.alignment) % Self.alignment
        extra.append(contentsOf: [UInt8(ascii: "F"), UInt8(ascii: "B")])
        extra.torchLE(UInt64(padding), 2)
        extra.append(Data(count: padding))

        let crc = TorchCRC32.checksum(contents)
        var header = Data()
        header.torchLE(0x0403_4B50, 4)
        header.torchLE(zip64 ? 45 : 20, 2)  // version needed: 4.5 for zip64
        header.torchLE(0, 2)  // flags
        header.torchLE(0, 2)  // method: stored
        header.torchLE(0, 2); header.torchLE(0x21, 2)  // time, date: 1980-01-01, for reproducible bytes
        header.torchLE(UInt64(crc), 4)
        header.torchLE(zip64 ? 0xFFFF_FFFF : UInt64(contents.count), 4)
        header.torchLE(zip64 ? 0xFFFF_FFFF : UInt64(contents.count), 4)
        header.torchLE(UInt64(nameBytes.count), 2)
        header.torchLE(UInt64(extra.count), 2)
        header.append(nameBytes)
        header.append(extra)
        records.append(Record(name: nameBytes, crc: crc, size: contents.count, offset: offset))
        offset += header.count + contents.count
        return header
    }

    /// The central directory and end records, after the last entry.
    mutating func centralDirectory() -> Data {
        let start = offset
        var out = Data()
        for r in records {
            let bigSize = forceZip64 || r.size >= 0xFFFF_FFFF, bigOffset = forceZip64 || r.offset >= 0xFFFF_FFFF
            var extra = Data()
            if bigSize || bigOffset {
                extra.torchLE(1, 2)
                extra.torchLE(UInt64((bigSize ? 16 : 0) + (bigOffset ? 8 : 0)), 2)
                if bigSize { extra.torchLE(UInt64(r.size), 8); extra.torchLE(UInt64(r.size), 8) }
                if bigOffset { extra.torchLE(UInt64(r.offset), 8) }
            }
            let version: UInt64 = extra.isEmpty ? 20 : 45
            out.torchLE(0x0201_4B50, 4)
            out.torchLE(version, 2); out.torchLE(version, 2)  // made by, needed
            out.torchLE(0, 2); out.torchLE(0, 2)  // flags, method
            out.torchLE(0, 2); out.torchLE(0x21, 2)  // time, date
            out.torchLE(UInt64(r.crc), 4)
            out.torchLE(bigSize ? 0xFFFF_FFFF : UInt64(r.size), 4)
            out.torchLE(bigSize ? 0xFFFF_FFFF : UInt64(r.size), 4)
            out.torchLE(UInt64(r.name.count), 2)
            out.torchLE(UInt64(extra.count), 2)
            out.torchLE(0, 2); out.torchLE(0, 2); out.torchLE(0, 2); out.torchLE(0, 4)  // comment, disk, attributes
            out.torchLE(bigOffset ? 0xFFFF_FFFF : UInt64(r.offset), 4)
            out.append(r.name)
            out.append(extra)
        }
        let size = out.count, count = records.count
        let zip64 = forceZip64 || count >= 0xFFFF || start >= 0xFFFF_FFFF || size >= 0xFFFF_FFFF
        if zip64 {
            let recordOffset = start + size
            out.torchLE(0x0606_4B50, 4)
            out.torchLE(44, 8)  // size of the rest of this record
            out.torchLE(45, 2); out.torchLE(45, 2)
            out.torchLE(0, 4); out.torchLE(0, 4)  // disk numbers
            out.torchLE(UInt64(count), 8); out.torchLE(UInt64(count), 8)
            out.torchLE(UInt64(size), 8); out.torchLE(UInt64(start), 8)
            out.torchLE(0x0706_4B50, 4)  // locator
            out.torchLE(0, 4); out.torchLE(UInt64(recordOffset), 8); out.torchLE(1, 4)
        }
        out.torchLE(0x0605_4B50, 4)
        out.torchLE(0, 2); out.torchLE(0, 2)
        out.torchLE(zip64 ? 0xFFFF : UInt64(count), 2); out.torchLE(zip64 ? 0xFFFF : UInt64(count), 2)
        out.torchLE(zip64 ? 0xFFFF_FFFF : UInt64(size), 4)
        out.torchLE(zip64 ? 0xFFFF_FFFF : UInt64(start), 4)
        out.torchLE(0, 2)  // comment length
        offset += out.count
        return out
    }
}

extension Data {
    fileprivate mutating func torchLE(_ value: UInt64, _ width: Int) {
        for i in 0..<width { append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }
}

/// CRC-32 (ISO-HDLC, zip's), eight bytes per step (slicing-by-8) so multi-gigabyte storages are quick.
enum TorchCRC32 {
    private static let table: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 { t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xFF)] }
        }
        return t
    }()

    static func checksum(_ data: Data) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            data.withUnsafeBytes { raw in
                var i = 0
                while i + 8 <= raw.count {
                    let lo = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ crc
                    let hi = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                    crc = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                        ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                        ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                        ^ t[256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                    i += 8
                }
                while i < raw.count {
                    crc = t[Int((crc ^ UInt32(raw[i])) & 0xFF)] ^ (crc >> 8)
                    i += 1
                }
            }
        }
        return ~crc
    }
}
