import sys, time
import torch, torch._inductor.package
if sys.argv[2] == "warmed":
    x = torch.ones(1, 1, 4, 4, device="cuda", dtype=torch.float16)
    torch.nn.functional.conv2d(x, torch.ones(1, 1, 3, 3, device="cuda", dtype=x.dtype))
    torch.ones(8, 8, device="cuda", dtype=x.dtype) @ torch.ones(8, 8, device="cuda", dtype=x.dtype)
    torch.cuda.synchronize()
if sys.argv[2] == "eager":
    import torchvision
    model = torchvision.models.resnet18().eval().cuda().half().to(memory_format=torch.channels_last)
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64, device="cuda", dtype=torch.float16))
    torch.cuda.synchronize()
if sys.argv[2] == "ort":
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        sys.exit("not run: this onnxruntime has no CUDA provider")
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in "xy"]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", io[:1], io[1:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    s = ort.InferenceSession(model.SerializeToString(), providers=["CUDAExecutionProvider"])
    print("ORT providers:", s.get_providers())
    s.run(None, {"x": __import__("numpy").ones(4, dtype="float32")})
t0 = time.perf_counter()
engine = torch._inductor.aoti_load_package(sys.argv[1], device_index=0)
print(f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)
x = torch.randn(4, 3, 64, 64, device="cuda", dtype=torch.float16).to(memory_format=torch.channels_last)
print("ran:", tuple(engine(x).shape))
