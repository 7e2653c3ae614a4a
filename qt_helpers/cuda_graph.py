"""A training step captured once as a CUDA graph and replayed for every batch (chapter 6).

A QT step launches hundreds of small kernels (the circuit's gates, the mapping model, the CNN, Adam); on a GPU
their launch cost, not their arithmetic, sets the MNIST step's time. Replaying a captured graph launches them
all at once. `fit(..., cuda_graph=True)` uses `GraphedStep`; chapter 6 measures it against the eager step.
"""
import torch


class GraphedStep:
    """`step(x, y)`: forward, backward and Adam step of `net` on one batch, returning (logits, loss).

    Batches of the first batch's shape replay one CUDA graph; others (a short last batch) run eagerly on the
    same parameters and optimiser state. Capturing needs a few warm-up steps; they are undone (parameters and
    optimiser state restored in place), so training matches the eager loop step for step.
    """

    def __init__(self, net, loss_fn, opt, warmup=3):
        self.net, self.loss_fn, self.opt, self.warmup = net, loss_fn, opt, warmup
        self.graph = None

    def eager(self, x, y):
        """One ordinary step (used for warm-up and for batches of another shape)."""
        logits = self.net(x)
        loss = self.loss_fn(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return logits.detach(), loss.detach()

    def warm_up(self, x, y):
        """Run `warmup` eager steps (they create the optimiser's state and the library's lazy caches), then put
        parameters and optimiser state back as they were: Adam's state starts at zero."""
        params = [p for p in self.net.parameters() if p.requires_grad]
        saved = [p.detach().clone() for p in params]
        state = {id(t): t.clone() for s in self.opt.state.values() for t in s.values() if torch.is_tensor(t)}
        for _ in range(self.warmup):
            self.eager(x, y)
        with torch.no_grad():
            for p, v in zip(params, saved, strict=True):
                p.copy_(v)
            for s in self.opt.state.values():
                for t in s.values():
                    if torch.is_tensor(t):
                        t.copy_(state[id(t)]) if id(t) in state else t.zero_()

    def capture(self, x, y):
        """Capture the step on the static batch tensors `self.x`, `self.y` (CUDA only)."""
        for group in self.opt.param_groups:  # a tensor lr, so the schedule reaches the captured Adam step
            device = group["params"][0].device
            group["capturable"] = True
            if not torch.is_tensor(group["lr"]):
                group["lr"] = torch.tensor(float(group["lr"]), device=device)
        for p, s in self.opt.state.items():  # a resumed Adam keeps its step counts on the CPU
            for k, v in s.items():
                if torch.is_tensor(v) and v.device != p.device:
                    s[k] = v.to(p.device)
        self.x, self.y = x.clone(), y.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
            self.warm_up(self.x, self.y)
        torch.cuda.current_stream().wait_stream(side)
        self.opt.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = self.net(self.x)
            self.loss = self.loss_fn(self.logits, self.y)
            self.loss.backward()
            self.opt.step()
        self.grads = [p.grad for p in self.net.parameters() if p.requires_grad]  # the graph writes into these

    def __call__(self, x, y):
        if self.graph is None:
            if x.device.type != "cuda":
                msg = (f"a CUDA graph needs the model and data on a CUDA GPU, not {x.device.type}; "
                       "train without cuda_graph")
                raise ValueError(msg)
            self.capture(x, y)
        if x.shape != self.x.shape:
            return self.eager(x, y)
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return self.logits.detach(), self.loss.detach()
