// Preloaded into supergateway (NODE_OPTIONS=--require): it has no host option and calls `app.listen(port)`, which
// listens on every interface. This pins any listen(port) without a host to 127.0.0.1, so the benchmark stays on
// loopback. The same preload as LOOPBACK_PRELOAD in tests/aggregator/test_upstream.py.
const net = require("node:net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
    if (typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
