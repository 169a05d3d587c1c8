// Whether DATA's targets fit a loss and its head, checked before any work (exit 3, never a
// silent cast — Keras itself would cast a float y to a class id, or train a sigmoid on 3s):
//
//   categorical cross-entropy   integer class ids below the softmax's units, or one-hot rows
//                               of its width (DataSource's labels)
//   binary cross-entropy        0/1 values, one per sigmoid unit (one unit: 0/1 labels, e.g. a
//                               two-class image folder, Keras's label_mode='binary';
//                               k units: multi-hot rows of width k)
//   regression                  finite numbers, one per output (an HDF5 y of width = units)

import Foundation

extension DataSource {
    /// Checks that the targets fit `loss` on a head of `units` outputs.
    /// - Throws: ``XferError`` `.badInput` naming this DATA.
    package func checkTargets(for loss: LossConfig, units: Int, purpose: String) throws {
        let name = loss.kind.shortName
        switch loss.kind {
        case .categoricalCrossentropy, .sparseCategoricalCrossentropy:
            _ = try requireClassLabels(for: purpose, loss: loss)
            try checkLabels(below: units)
        case .binaryCrossentropy:
            let targets = self.targets ?? (oneHotWidth != nil ? [] : nil)
            guard let targets else { _ = try requireLabels(for: purpose); return }
            if kind == .images && (units != 1 || classCount > 2) {
                throw XferError.badInput(path, "has \(classCount) classes but \(name) on \(units) sigmoid unit\(units == 1 ? "" : "s") takes two classes (0/1)",
                                         hint: "a binary head is one sigmoid unit over two class folders; for more classes use categorical_crossentropy")
            }
            guard targetWidth == units else {
                throw XferError.badInput(path, "y has \(targetWidth) value\(targetWidth == 1 ? "" : "s") per sample but the model has \(units) sigmoid output\(units == 1 ? "" : "s")",
                                         hint: units == 1 ? "a binary head takes one 0/1 label per sample" : "a multi-label head takes one 0/1 column per label")
            }
            if let bad = targets.firstIndex(where: { $0 != 0 && $0 != 1 }) {
                throw XferError.badInput(path, "y\(position(bad)) is \(String(format: "%g", Double(targets[bad]))), not 0 or 1 (the loss is \(name))",
                                         hint: "binary and multi-label targets are 0/1; for numeric targets give --loss mse")
            }
        case .meanSquaredError, .meanAbsoluteError, .huber:
            if kind == .images {
                throw XferError.badInput(path, "is an image folder (classes), but \(name) is a regression loss",
                                         hint: "regression takes an HDF5 DATA file whose y holds the numbers; for classes use categorical_crossentropy")
            }
            let targets = self.targets ?? (oneHotWidth != nil ? [] : nil)
            guard let targets else { _ = try requireLabels(for: purpose); return }
            guard targetWidth == units else {
                throw XferError.badInput(path, "y has \(targetWidth) value\(targetWidth == 1 ? "" : "s") per sample but the model has \(units) output\(units == 1 ? "" : "s")",
                                         hint: "a regression head has one output per column of y")
            }
            if let bad = targets.firstIndex(where: { !$0.isFinite }) {
                throw XferError.badInput(path, "y\(position(bad)) is \(targets[bad]), not a number to regress on")
            }
        }
    }

    /// The class labels a categorical loss trains on; when `y` holds numbers or multi-hot rows
    /// instead, the error says which loss would take them.
    /// - Throws: ``XferError`` `.badInput` naming this DATA.
    package func requireClassLabels(for purpose: String, loss: LossConfig) throws -> [Int] {
        do { return try requireLabels(for: purpose) } catch var e as XferError {
            if targets != nil, e.message.contains("not an integer") || e.message.contains("negative") || e.message.contains("not one-hot") {
                e.message += " (the loss is \(loss.kind.shortName), which takes class labels)"
                e.hint = "for numeric targets give --loss mse (or mae, huber); for multi-hot rows, --loss binary_crossentropy"
            }
            throw e
        }
    }

    /// `[i]` or `[i, j]` of flat index `k` into the targets.
    private func position(_ k: Int) -> String {
        targetWidth == 1 ? "[\(k)]" : "[\(k / targetWidth), \(k % targetWidth)]"
    }

    /// Whether `y` holds rows of 0/1 that are not one-hot (multi-hot: several labels per sample).
    package var hasMultiHotTargets: Bool {
        guard kind == .arrays, let targets, targetWidth > 1, targets.allSatisfy({ $0 == 0 || $0 == 1 }) else { return false }
        return stride(from: 0, to: targets.count, by: targetWidth).contains { s in targets[s..<(s + targetWidth)].reduce(0, +) != 1 }
    }

    /// The class of each sample for class weights, as Keras maps targets: the argmax of a row,
    /// else the rounded value. Nil without targets.
    package var targetClasses: [Int]? {
        if let labels { return labels }
        guard let targets else { return nil }
        let w = targetWidth
        return stride(from: 0, to: targets.count, by: w).map { s in
            w == 1 ? Int(targets[s].rounded()) : (0..<w).max { targets[s + $0] < targets[s + $1] } ?? 0
        }
    }
}
