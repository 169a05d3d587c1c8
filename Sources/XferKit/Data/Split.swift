// `--validation-split F`: a seeded split that is stratified per class (each class
// gives round(F · its count) samples, at least one when it has two or more), so
// a small class is never left out of validation and the two parts never overlap.

/// Training and validation sample indices, both sorted.
package struct DataSplit: Sendable, Equatable {
    package var training: [Int]
    package var validation: [Int]
    /// Per class: (training count, validation count).
    package var perClass: [(train: Int, validation: Int)]

    package static func == (a: DataSplit, b: DataSplit) -> Bool {
        a.training == b.training && a.validation == b.validation
            && a.perClass.map(\.train) == b.perClass.map(\.train) && a.perClass.map(\.validation) == b.perClass.map(\.validation)
    }
}

/// Splits samples with `labels` into training and validation, `fraction` of each class to validation.
package func stratifiedSplit(labels: [Int], classes: Int, fraction: Double, seed: UInt64) -> DataSplit {
    var rng = SeededRandom(seed: seed, stream: .split)
    var byClass = [[Int]](repeating: [], count: classes)
    for (i, l) in labels.enumerated() where l >= 0 && l < classes { byClass[l].append(i) }
    var train: [Int] = [], val: [Int] = []
    var perClass: [(train: Int, validation: Int)] = []
    for members in byClass {
        let order = rng.permutation(members.count).map { members[$0] }
        var k = Int((fraction * Double(members.count)).rounded())
        if fraction > 0 && members.count >= 2 { k = min(max(k, 1), members.count - 1) }
        k = min(k, members.count)
        val += order.prefix(k)
        train += order.dropFirst(k)
        perClass.append((members.count - k, k))
    }
    return DataSplit(training: train.sorted(), validation: val.sorted(), perClass: perClass)
}
