import XferKit

// A VGG-style network Keras pretrained on Fashion-MNIST classes 0–4, fine-tuned on the other five.
var model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")   // .h5, .weights.h5, .keras
let train = try DataSource(contentsOf: "checkpoints/fashion/train")              // one folder per class
try model.freeze(before: "block3")
try model.replaceTop(with: [.flatten, .dense(64, activation: .relu), .dropout(0.5)], classes: train.classCount)
print(model.summary())

// Train with progress (cancelling the task stops it), then evaluate on held-out images.
try await model.fit(train, epochs: 3, optimizer: .sgd(learningRate: 0.01, momentum: 0.9),
                    validation: .split(0.2), callbacks: [.earlyStopping(patience: 2)]) { event in
    if case .epochEnd = event { print(event) }
}
print("test:", try model.evaluate(try DataSource(contentsOf: "checkpoints/fashion/test")))

// Save for Keras 3 and for ONNX runtimes (the extension chooses the format), and predict a photo.
try model.save(to: "/tmp/fashion-tuned.keras")
try model.export(to: "/tmp/fashion-tuned.onnx")
let photo = try model.predict(image: "checkpoints/fashion/test/7_sneaker/test_00112.png")
print(photo.className!, photo.probability!)
