// Predicts one photo with a model and prints its class:
//   PredictPhoto [MODEL] [PHOTO]   (default: the README example's model, a sneaker of the test set)
import Foundation
import XferKit

let arguments = CommandLine.arguments.dropFirst()
let photo = arguments.dropFirst().first ?? "checkpoints/fashion/test/7_sneaker/test_00112.png"
do {
    let model = try KerasModel(contentsOf: arguments.first ?? "/tmp/fashion-tuned.keras")
    let prediction = try model.predict(image: photo)
    print("\(photo): \(prediction.className ?? "class \(prediction.classIndex!)") (p = \(prediction.probability!))")
} catch {
    // The line and the hint `xfer` prints for the same error.
    print("error: \(error.localizedDescription)")
    if let hint = (error as? LocalizedError)?.recoverySuggestion { print("hint: \(hint)") }
    exit(1)
}
