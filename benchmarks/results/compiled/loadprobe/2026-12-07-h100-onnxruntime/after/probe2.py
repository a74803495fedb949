import sys, time, os
import torch, torch._inductor.package
arm = sys.argv[2]
if arm in ("ortimport", "preload", "ortcpu"):
    import onnxruntime as ort
    if arm == "preload":
        ort.preload_dlls()
    if arm == "ortcpu":
        import onnx
        from onnx import TensorProto, helper
        io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in "xy"]
        g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", io[:1], io[1:])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]); m.ir_version = 8
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        s.run(None, {"x": __import__("numpy").ones(4, dtype="float32")})
if arm == "ortcuda":
    import onnx, onnxruntime as ort
    from onnx import TensorProto, helper
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in "xy"]
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", io[:1], io[1:])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]); m.ir_version = 8
    s = ort.InferenceSession(m.SerializeToString(), providers=["CUDAExecutionProvider"])
    s.run(None, {"x": __import__("numpy").ones(4, dtype="float32")})
libs = sorted({l.split()[-1] for l in open("/proc/self/maps") if ".so" in l})
open(os.path.join(sys.argv[3], f"maps-{arm}.txt"), "w").write("\n".join(libs) + "\n")
t0 = time.perf_counter()
engine = torch._inductor.aoti_load_package(sys.argv[1], device_index=0)
print(f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)
x = torch.randn(4, 3, 64, 64, device="cuda", dtype=torch.float16).to(memory_format=torch.channels_last)
print("ran:", tuple(engine(x).shape))
