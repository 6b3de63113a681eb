#include "weights/pickle.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <optional>
#include <unordered_map>
#include <unordered_set>

namespace cbst::weights {

namespace {

// Caps that no real state_dict reaches (VGG16: a few hundred stack entries and memo slots,
// about ten objects per tensor) but that keep a hostile stream from growing memory without
// bound. An object costs about 250 bytes and a cell (a container slot, memo entry or MARK)
// 16 to 32, so the pickle machine stays under about 0.6 GB whatever the input, and under
// about 400 bytes per input byte for small inputs.
constexpr size_t kMaxStack = size_t(1) << 20;
constexpr size_t kMaxMemo = size_t(1) << 20;
constexpr uint64_t kMaxString = uint64_t(1) << 30;
constexpr uint32_t kMaxDepth = 100;
constexpr uint64_t kMaxObjects = uint64_t(1) << 20;
constexpr uint64_t kMaxCells = uint64_t(1) << 23;
// Each opcode byte adds at most one object and (MARK, memo, APPEND of a pushed value) about
// one cell; only torch.Size and OrderedDict(list) copy slots. Four cells per byte leaves
// room for both, plus a floor for tiny pickles.
constexpr uint64_t kCellsPerByte = 4;
constexpr uint64_t kMinCells = uint64_t(1) << 16;


struct GlobalInfo {
  const char* module;
  const char* name;
  PyGlobal kind;
  RawDType dtype;
};

// The closed set of globals. Everything else is refused.
constexpr GlobalInfo kAllowed[] = {
    {"collections", "OrderedDict", PyGlobal::ordered_dict, RawDType::u8},
    {"torch._utils", "_rebuild_tensor_v2", PyGlobal::rebuild_tensor_v2, RawDType::u8},
    {"torch._utils", "_rebuild_tensor", PyGlobal::rebuild_tensor, RawDType::u8},
    {"torch._utils", "_rebuild_parameter", PyGlobal::rebuild_parameter, RawDType::u8},
    {"torch._utils", "_rebuild_parameter_with_state", PyGlobal::rebuild_parameter_with_state, RawDType::u8},
    {"torch", "Size", PyGlobal::torch_size, RawDType::u8},
    {"torch", "UntypedStorage", PyGlobal::storage_class, RawDType::u8},
    {"torch", "DoubleStorage", PyGlobal::storage_class, RawDType::f64},
    {"torch", "FloatStorage", PyGlobal::storage_class, RawDType::f32},
    {"torch", "HalfStorage", PyGlobal::storage_class, RawDType::f16},
    {"torch", "BFloat16Storage", PyGlobal::storage_class, RawDType::bf16},
    {"torch", "LongStorage", PyGlobal::storage_class, RawDType::i64},
    {"torch", "IntStorage", PyGlobal::storage_class, RawDType::i32},
    {"torch", "ShortStorage", PyGlobal::storage_class, RawDType::i16},
    {"torch", "CharStorage", PyGlobal::storage_class, RawDType::i8},
    {"torch", "ByteStorage", PyGlobal::storage_class, RawDType::u8},
    {"torch", "BoolStorage", PyGlobal::storage_class, RawDType::boolean},
    {"torch", "DoubleTensor", PyGlobal::tensor_class, RawDType::f64},
    {"torch", "FloatTensor", PyGlobal::tensor_class, RawDType::f32},
    {"torch", "HalfTensor", PyGlobal::tensor_class, RawDType::f16},
    {"torch", "BFloat16Tensor", PyGlobal::tensor_class, RawDType::bf16},
    {"torch", "LongTensor", PyGlobal::tensor_class, RawDType::i64},
    {"torch", "IntTensor", PyGlobal::tensor_class, RawDType::i32},
    {"torch", "ShortTensor", PyGlobal::tensor_class, RawDType::i16},
    {"torch", "CharTensor", PyGlobal::tensor_class, RawDType::i8},
    {"torch", "ByteTensor", PyGlobal::tensor_class, RawDType::u8},
    {"torch", "BoolTensor", PyGlobal::tensor_class, RawDType::boolean},
    {"numpy", "dtype", PyGlobal::numpy_dtype, RawDType::u8},
    {"numpy.core.multiarray", "scalar", PyGlobal::numpy_scalar, RawDType::u8},
    {"numpy._core.multiarray", "scalar", PyGlobal::numpy_scalar, RawDType::u8},
    {"_codecs", "encode", PyGlobal::codecs_encode, RawDType::u8},
};

class Machine {
 public:
  Machine(Cursor& cur, const PersistentLoad& load)
      : cur_(cur), load_(load),
        cell_limit_(std::min(kMaxCells, cur.remaining() > kMaxCells ? kMaxCells
                                                                     : cur.remaining() * kCellsPerByte + kMinCells)) {}

  PyRef run() {
    while (true) {
      const uint64_t at = cur_.pos();
      const uint8_t op = cur_.u8();
      op_pos_ = at;
      if (op == '.') {  // STOP
        if (stack_.size() != 1 || !marks_.empty())
          fail("STOP with ", stack_.size(), " values on the stack; expected exactly one");
        std::unordered_set<const PyObject*> seen;
        check_complete(stack_.back(), 0, seen);
        return stack_.back();
      }
      step(op);
    }
  }

 private:
  template <class... Parts>
  [[noreturn]] void fail(const Parts&... parts) const {
    CBST_THROW("pickle: ", parts..., " (opcode at byte ", op_pos_, "); the file is corrupt or not a PyTorch checkpoint");
  }

  PyRef make(PyObject::Kind k) {
    if (++objects_ > kMaxObjects) fail("more than ", kMaxObjects, " objects");
    auto o = std::make_shared<PyObject>();
    o->kind = k;
    return o;
  }

  PyRef make_int(int64_t v) {
    PyRef o = make(PyObject::Kind::integer);
    o->integer = v;
    return o;
  }

  void charge(uint64_t n) {
    cells_ += n;
    if (cells_ > cell_limit_)
      fail("more than ", cell_limit_, " container slots, memo entries and marks for a pickle of at most ",
           cur_.remaining() + cur_.pos(), " bytes");
  }

  // Every way a value enters a container: depth and the no-cycle rule are checked here. A
  // cycle needs a container that is reachable from the value added to it: the container
  // itself, or one that already sits inside another (which open_container refuses).
  void adopt(PyObject& parent, const PyRef& child) {
    if (child.get() == &parent) fail("a ", py_kind_name(parent.kind), " that contains itself (a reference cycle)");
    if (child->depth >= kMaxDepth) fail("containers nested deeper than ", kMaxDepth, " levels");
    parent.depth = std::max(parent.depth, child->depth + 1);
    child->contained = true;
  }

  PyObject& open_container(PyRef& c, PyObject::Kind kind, const char* op) {
    if (c->kind != kind) fail(op, " on a ", py_kind_name(c->kind));
    if (c->contained) fail(op, " on a ", py_kind_name(c->kind), " that already sits inside another container");
    return *c;
  }

  void add_item(PyObject& list, PyRef v) {
    charge(1);
    adopt(list, v);
    list.items.push_back(std::move(v));
  }

  void add_entry(PyObject& dict, PyRef k, PyRef v) {
    charge(2);
    adopt(dict, k);
    adopt(dict, v);
    dict.entries.emplace_back(std::move(k), std::move(v));
  }

  PyRef make_tuple(std::vector<PyRef> items) {
    PyRef t = make(PyObject::Kind::tuple);
    charge(items.size());
    for (const PyRef& i : items) adopt(*t, i);
    t->items = std::move(items);
    return t;
  }

  void push(PyRef o) {
    if (stack_.size() >= kMaxStack) fail("stack deeper than ", kMaxStack, " entries");
    stack_.push_back(std::move(o));
  }

  PyRef pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("stack underflow");
    PyRef o = std::move(stack_.back());
    stack_.pop_back();
    return o;
  }

  PyRef& top() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("stack underflow");
    return stack_.back();
  }

  // Pops everything above the last MARK (and the mark itself).
  std::vector<PyRef> pop_to_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> out(std::make_move_iterator(stack_.begin() + std::ptrdiff_t(m)),
                           std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return out;
  }

  void memo_put(uint64_t idx) {
    if (stack_.empty()) fail("memo store from an empty stack");
    if (memo_.size() >= kMaxMemo && !memo_.count(idx)) fail("more than ", kMaxMemo, " memo entries");
    charge(1);
    memo_[idx] = stack_.back();
  }

  void memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo index ", idx, " was never stored");
    push(it->second);
  }

  std::string read_text(uint64_t n) {
    if (n > kMaxString) fail("string of ", n, " bytes");
    return cur_.string(n);
  }

  std::string read_line() {
    std::string s;
    while (true) {
      const char c = char(cur_.u8());
      if (c == '\n') return s;
      if (s.size() > 256) fail("GLOBAL name longer than 256 bytes");
      s += c;
    }
  }

  PyRef make_global(std::string module, const std::string& name) {
    if (module == "__builtin__") module = "builtins";  // Python 2 spelling
    for (const GlobalInfo& g : kAllowed) {
      if (module == g.module && name == g.name) {
        PyRef o = make(PyObject::Kind::global);
        o->global = g.kind;
        o->dtype = g.dtype;
        o->text = module + "." + name;
        return o;
      }
    }
    CBST_THROW("refused pickle global '", printable(module), ".", printable(name),
               "': only tensors, storages and containers are allowed, so nothing in the file is executed; "
               "this file is not a plain state_dict and may be malicious");
  }

  static int64_t as_int(const PyRef& o, const char* what) {
    if (o->kind != PyObject::Kind::integer && o->kind != PyObject::Kind::boolean)
      CBST_THROW("pickle: ", what, " is a ", py_kind_name(o->kind), ", expected an integer; the file is corrupt");
    return o->integer;
  }

  static Shape as_shape(const PyRef& o, const char* what) {
    if (o->kind != PyObject::Kind::tuple && o->kind != PyObject::Kind::list)
      CBST_THROW("pickle: tensor ", what, " is a ", py_kind_name(o->kind), ", expected a tuple; the file is corrupt");
    Shape s;
    for (const PyRef& d : o->items) s.push_back(as_int(d, what));
    return s;
  }

  PyRef make_tensor(const PyRef& storage, const PyRef& offset, const PyRef& size, const PyRef& stride) {
    if (storage->kind != PyObject::Kind::storage)
      CBST_THROW("pickle: tensor storage is a ", py_kind_name(storage->kind), "; the file is corrupt");
    PyRef t = make(PyObject::Kind::tensor);
    t->storage = storage->storage;
    t->dtype = storage->storage.dtype;
    t->storage_offset = as_int(offset, "storage offset");
    t->sizes = as_shape(size, "size");
    t->strides = as_shape(stride, "stride");
    t->tensor_complete = true;
    return t;
  }

  // REDUCE and NEWOBJ: apply an allowed global to its argument tuple, building a value.
  PyRef apply(const PyRef& callable, const PyRef& args) {
    if (callable->kind != PyObject::Kind::global) fail("call of a ", py_kind_name(callable->kind));
    if (args->kind != PyObject::Kind::tuple) fail("call arguments are a ", py_kind_name(args->kind));
    const std::vector<PyRef>& a = args->items;
    switch (callable->global) {
      case PyGlobal::ordered_dict: {
        PyRef d = make(PyObject::Kind::dict);
        if (a.size() == 1 && (a[0]->kind == PyObject::Kind::list || a[0]->kind == PyObject::Kind::tuple)) {
          for (const PyRef& pair : a[0]->items) {
            if (pair->kind != PyObject::Kind::tuple || pair->items.size() != 2) fail("OrderedDict item is not a pair");
            add_entry(*d, pair->items[0], pair->items[1]);
          }
        } else if (!a.empty()) {
          fail("OrderedDict called with ", a.size(), " arguments");
        }
        return d;
      }
      case PyGlobal::rebuild_tensor_v2:
        if (a.size() < 6 || a.size() > 7) fail("_rebuild_tensor_v2 with ", a.size(), " arguments");
        return make_tensor(a[0], a[1], a[2], a[3]);
      case PyGlobal::rebuild_tensor:
        if (a.size() != 4) fail("_rebuild_tensor with ", a.size(), " arguments");
        return make_tensor(a[0], a[1], a[2], a[3]);
      case PyGlobal::rebuild_parameter:
      case PyGlobal::rebuild_parameter_with_state:
        if (a.size() < 3 || a[0]->kind != PyObject::Kind::tensor) fail("_rebuild_parameter without a tensor");
        return a[0];
      case PyGlobal::torch_size: {
        if (a.size() != 1) fail("torch.Size with ", a.size(), " arguments");
        return make_tuple(a[0]->items);
      }
      case PyGlobal::tensor_class: {
        if (!a.empty()) fail(callable->text, " called with arguments");
        PyRef t = make(PyObject::Kind::tensor);
        t->dtype = callable->dtype;
        return t;
      }
      case PyGlobal::storage_class:
        fail("direct construction of ", callable->text, " (storages must come from persistent ids)");
      case PyGlobal::numpy_dtype: {
        if (a.size() != 3 || a[0]->kind != PyObject::Kind::string) fail("numpy.dtype called without (str, bool, bool)");
        PyRef d = make(PyObject::Kind::none);
        d->text = "numpy.dtype";
        return d;
      }
      case PyGlobal::numpy_scalar: {
        if (a.empty() || a.size() > 2 || a[0]->kind != PyObject::Kind::none || a[0]->text != "numpy.dtype")
          fail("numpy scalar called without a dtype");
        PyRef v = make(PyObject::Kind::none);
        v->text = "numpy scalar";
        return v;
      }
      case PyGlobal::codecs_encode: {
        if (a.empty() || a.size() > 2 || a[0]->kind != PyObject::Kind::string) fail("_codecs.encode called without a str");
        PyRef b = make(PyObject::Kind::none);
        b->text = "bytes";
        return b;
      }
    }
    fail("unknown global");
  }

  void build(const PyRef& obj, const PyRef& state) {
    if (obj->kind == PyObject::Kind::dict) return;  // OrderedDict's `_metadata`: not needed
    if (obj->kind == PyObject::Kind::none && obj->text == "numpy.dtype") return;  // byte order etc.: not needed
    if (obj->kind == PyObject::Kind::tensor) {
      if (obj->tensor_complete) return;  // Parameter state (requires_grad etc.)
      // Legacy tensor class instance: state is (storage, offset, size, stride), as in set_().
      if (state->kind != PyObject::Kind::tuple || state->items.size() != 4) fail("legacy tensor state is not a 4-tuple");
      PyRef built = make_tensor(state->items[0], state->items[1], state->items[2], state->items[3]);
      if (built->dtype != obj->dtype) fail("legacy tensor class and storage disagree on the element type");
      *obj = *built;
      return;
    }
    fail("BUILD on a ", py_kind_name(obj->kind));
  }

  // A legacy tensor class instance that never received its BUILD has no data. Each object
  // is visited once: memo references can make the graph a DAG that is exponentially large
  // as a tree.
  void check_complete(const PyRef& o, int depth, std::unordered_set<const PyObject*>& seen) {
    if (depth > 64 || !seen.insert(o.get()).second) return;  // deeper nesting: flattening reports it
    if (o->kind == PyObject::Kind::tensor && !o->tensor_complete) fail("a tensor was created but never filled");
    for (const PyRef& i : o->items) check_complete(i, depth + 1, seen);
    for (const auto& [k, v] : o->entries) check_complete(v, depth + 1, seen);
  }

  void step(uint8_t op) {
    switch (op) {
      case 0x80: {  // PROTO
        const uint8_t proto = cur_.u8();
        if (proto > 5) fail("pickle protocol ", int(proto), " is not supported");
        break;
      }
      case 0x95: cur_.skip(8); break;  // FRAME: only a read-ahead hint
      case '(':  // MARK
        charge(1);
        marks_.push_back(stack_.size());
        break;
      case 'N': push(make(PyObject::Kind::none)); break;
      case 0x88:
      case 0x89: {  // NEWTRUE / NEWFALSE
        PyRef b = make(PyObject::Kind::boolean);
        b->integer = op == 0x88;
        push(b);
        break;
      }
      case 'K': push(make_int(cur_.u8())); break;              // BININT1
      case 'M': push(make_int(cur_.u16())); break;             // BININT2
      case 'J': push(make_int(int64_t(cur_.i32()))); break;    // BININT
      case 0x8A: {                                             // LONG1
        const uint8_t n = cur_.u8();
        std::string bytes = cur_.string(n);
        if (n <= 8) {
          uint64_t v = 0;
          for (size_t i = 0; i < n; ++i) v |= uint64_t(uint8_t(bytes[i])) << (8 * i);
          if (n > 0 && n < 8 && (uint8_t(bytes[n - 1]) & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
          push(make_int(int64_t(v)));
        } else {
          PyRef big = make(PyObject::Kind::big_integer);
          big->text = std::move(bytes);
          push(big);
        }
        break;
      }
      case 'G': {  // BINFLOAT: big-endian binary64
        uint8_t b[8];
        cur_.bytes(b, 8);
        uint64_t bits = 0;
        for (uint8_t x : b) bits = bits << 8 | x;
        PyRef f = make(PyObject::Kind::floating);
        std::memcpy(&f->floating, &bits, 8);
        push(f);
        break;
      }
      case 'X':  // BINUNICODE
      case 'T':  // BINSTRING (Python 2 str)
      case 0x8C:  // SHORT_BINUNICODE
      case 'U':  // SHORT_BINSTRING
      case 0x8D: {  // BINUNICODE8
        const uint64_t n = (op == 'X' || op == 'T') ? cur_.u32() : op == 0x8D ? cur_.u64() : cur_.u8();
        PyRef s = make(PyObject::Kind::string);
        s->text = read_text(n);
        push(s);
        break;
      }
      case ')': push(make(PyObject::Kind::tuple)); break;  // EMPTY_TUPLE
      case ']': push(make(PyObject::Kind::list)); break;   // EMPTY_LIST
      case '}': push(make(PyObject::Kind::dict)); break;   // EMPTY_DICT
      case 't': push(make_tuple(pop_to_mark())); break;  // TUPLE
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1/2/3
        std::vector<PyRef> items(size_t(op - 0x84));
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(make_tuple(std::move(items)));
        break;
      }
      case 'a': {  // APPEND
        PyRef v = pop();
        add_item(open_container(top(), PyObject::Kind::list, "APPEND"), std::move(v));
        break;
      }
      case 'e': {  // APPENDS
        std::vector<PyRef> vs = pop_to_mark();
        PyObject& list = open_container(top(), PyObject::Kind::list, "APPENDS");
        for (PyRef& v : vs) add_item(list, std::move(v));
        break;
      }
      case 's': {  // SETITEM
        PyRef v = pop();
        PyRef k = pop();
        add_entry(open_container(top(), PyObject::Kind::dict, "SETITEM"), std::move(k), std::move(v));
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<PyRef> kv = pop_to_mark();
        if (kv.size() % 2) fail("SETITEMS with an odd number of values");
        PyObject& dict = open_container(top(), PyObject::Kind::dict, "SETITEMS");
        for (size_t i = 0; i < kv.size(); i += 2) add_entry(dict, std::move(kv[i]), std::move(kv[i + 1]));
        break;
      }
      case 'c': {  // GLOBAL "module\nname\n"
        std::string module = read_line();
        std::string name = read_line();
        push(make_global(std::move(module), name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        PyRef name = pop();
        PyRef module = pop();
        if (module->kind != PyObject::Kind::string || name->kind != PyObject::Kind::string)
          fail("STACK_GLOBAL with non-string names");
        push(make_global(module->text, name->text));
        break;
      }
      case 'R':  // REDUCE
      case 0x81: {  // NEWOBJ: cls.__new__(cls, *args); for the allowed classes the same as a call
        PyRef args = pop();
        PyRef callable = pop();
        push(apply(callable, args));
        break;
      }
      case 'b': {  // BUILD
        PyRef state = pop();
        build(top(), state);
        break;
      }
      case 'Q': {  // BINPERSID
        PyRef pid = pop();
        PyRef storage = load_(pid);
        push(storage);
        break;
      }
      case 'q': memo_put(cur_.u8()); break;   // BINPUT
      case 'r': memo_put(cur_.u32()); break;  // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
      case 'h': memo_get(cur_.u8()); break;   // BINGET
      case 'j': memo_get(cur_.u32()); break;  // LONG_BINGET
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail("unsupported opcode ", hex);
      }
    }
  }

  Cursor& cur_;
  const PersistentLoad& load_;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyRef> memo_;
  uint64_t op_pos_ = 0;
  uint64_t objects_ = 0;
  uint64_t cells_ = 0;
  uint64_t cell_limit_;
};

}  // namespace

PyObject::~PyObject() {
  std::vector<PyRef> pending;
  auto take_children = [&pending](PyObject& o) {
    for (PyRef& c : o.items) pending.push_back(std::move(c));
    for (auto& [k, v] : o.entries) {
      pending.push_back(std::move(k));
      pending.push_back(std::move(v));
    }
    o.items.clear();
    o.entries.clear();
  };
  try {
    take_children(*this);
    while (!pending.empty()) {
      PyRef c = std::move(pending.back());
      pending.pop_back();
      // The last owner takes the grandchildren, so `c` dies here without recursing.
      if (c && c.use_count() == 1) take_children(*c);
    }
  } catch (...) {
    // Out of memory for `pending`: the rest is released recursively, which the depth cap
    // applied while building keeps shallow.
  }
}

const char* py_kind_name(PyObject::Kind k) {
  switch (k) {
    case PyObject::Kind::none: return "None";
    case PyObject::Kind::boolean: return "bool";
    case PyObject::Kind::integer: return "int";
    case PyObject::Kind::big_integer: return "big int";
    case PyObject::Kind::floating: return "float";
    case PyObject::Kind::string: return "str";
    case PyObject::Kind::tuple: return "tuple";
    case PyObject::Kind::list: return "list";
    case PyObject::Kind::dict: return "dict";
    case PyObject::Kind::global: return "global";
    case PyObject::Kind::storage: return "storage";
    case PyObject::Kind::tensor: return "tensor";
  }
  return "?";
}

PyRef unpickle(Cursor& cursor, const PersistentLoad& persistent_load) {
  const uint64_t start = cursor.pos();
  try {
    return Machine(cursor, persistent_load).run();
  } catch (const std::bad_alloc&) {
    CBST_THROW("pickle: out of memory unpickling the object that starts at byte ", start, " (now at byte ",
               cursor.pos(), "); the file is corrupt or hostile, or the machine has too little memory");
  }
}

}  // namespace cbst::weights
