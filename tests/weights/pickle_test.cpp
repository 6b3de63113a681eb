// The restricted pickle machine: what it builds, and what it refuses.
#include "weights/pickle.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "tests/support/expect_close.h"
#include "weights_fixtures.h"

namespace cbst::weights {
namespace {

using testing::Bytes;
using testing::PickleWriter;

PyRef no_pid(const PyRef&) { throw Error("persistent id not expected"); }

PyRef run(const Bytes& b, const PersistentLoad& load = no_pid) {
  MemorySource src(b);
  Cursor cur(src);
  return unpickle(cur, load);
}

std::string error_of(const Bytes& b) { return ::cbst::testing::error_of([&] { run(b); }); }

Bytes malicious(const std::string& module, const std::string& name) {
  // The classic exploit: GLOBAL module.name, MARK 'echo pwned' TUPLE, REDUCE.
  PickleWriter p;
  p.proto();
  p.op('c');
  p.w.str(module + "\n" + name + "\n");
  p.mark();
  p.str("touch /tmp/cbst_pickle_pwned");
  p.tuple();
  p.op('R');
  p.stop();
  return p.w.b;
}

TEST(Pickle, ReducingOsSystemIsRefusedByName) {
  std::remove("/tmp/cbst_pickle_pwned");
  EXPECT_NE(error_of(malicious("os", "system")).find("refused pickle global 'os.system'"), std::string::npos);
  EXPECT_NE(error_of(malicious("posix", "system")).find("refused pickle global 'posix.system'"), std::string::npos);
  EXPECT_NE(error_of(malicious("builtins", "eval")).find("'builtins.eval'"), std::string::npos);
  EXPECT_NE(error_of(malicious("__builtin__", "exec")).find("'builtins.exec'"), std::string::npos);
  EXPECT_NE(error_of(malicious("subprocess", "Popen")).find("'subprocess.Popen'"), std::string::npos);
  EXPECT_NE(error_of(malicious("torch", "load")).find("'torch.load'"), std::string::npos);
  EXPECT_FALSE(std::ifstream("/tmp/cbst_pickle_pwned").good()) << "nothing may be executed";
}

TEST(Pickle, StackGlobalIsCheckedLikeGlobal) {
  PickleWriter p;
  p.w.u8(0x80);
  p.w.u8(4);
  p.w.u8(0x8C);
  p.w.u8(2);
  p.w.str("os");
  p.w.u8(0x8C);
  p.w.u8(6);
  p.w.str("system");
  p.op(0x93);
  p.stop();
  EXPECT_NE(error_of(p.w.b).find("refused pickle global 'os.system'"), std::string::npos);
}

TEST(Pickle, UnsupportedOpcodesAreRefused) {
  for (uint8_t op : {uint8_t('i'), uint8_t('o'), uint8_t('I'), uint8_t(0x92), uint8_t('P'), uint8_t('S')}) {
    Bytes b = {0x80, 0x02, op, '.'};
    EXPECT_NE(error_of(b).find("unsupported opcode"), std::string::npos) << int(op);
  }
}

TEST(Pickle, BuildsContainersAndScalars) {
  PickleWriter p;
  p.proto();
  p.op('}');
  p.mark();
  p.str("list");
  p.op(']');
  p.mark();
  p.integer(1);
  p.integer(300);
  p.integer(-5);
  p.integer(int64_t(1) << 40);
  p.op('N');
  p.op(0x88);
  p.op('e');
  p.str("float");
  p.w.u8('G');
  const uint8_t one_half[8] = {0x3F, 0xE0, 0, 0, 0, 0, 0, 0};  // 0.5, big-endian
  p.w.raw(one_half, 8);
  p.op('u');
  p.stop();
  const PyRef d = run(p.w.b);
  ASSERT_EQ(d->kind, PyObject::Kind::dict);
  ASSERT_EQ(d->entries.size(), 2u);
  const PyRef& list = d->entries[0].second;
  ASSERT_EQ(list->items.size(), 6u);
  EXPECT_EQ(list->items[1]->integer, 300);
  EXPECT_EQ(list->items[2]->integer, -5);
  EXPECT_EQ(list->items[3]->integer, int64_t(1) << 40);
  EXPECT_EQ(list->items[4]->kind, PyObject::Kind::none);
  EXPECT_EQ(d->entries[1].second->floating, 0.5);
}

TEST(Pickle, StructuralCorruptionIsAnError) {
  EXPECT_NE(error_of({0x80, 0x02, 't', '.'}).find("no MARK"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, 'a', '.'}).find("underflow"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, 'h', 7, '.'}).find("never stored"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, 'N', 'N', '.'}).find("STOP with 2"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, 'N', ']', 's', '.'}).find("underflow"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, 'X', 0x00, 0x10, 0x00, 0x00, 'a'}).find("truncated"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, 'X', 0xff, 0xff, 0xff, 0x7f}).find("string of 2147483647 bytes"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, 'N', ')', 'R', '.'}).find("call of a None"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, ')', 'N', 'b', '.'}).find("BUILD on a tuple"), std::string::npos);
}

TEST(Pickle, ReferenceCyclesAreRefused) {
  // ] q0 h0 a . : a list that contains itself.
  EXPECT_NE(error_of({0x80, 0x02, ']', 'q', 0, 'h', 0, 'a', '.'}).find("contains itself"), std::string::npos);
  // L0 = [], L1 = [L0], then L0.append(L1): L0 already sits inside L1.
  const std::string e = error_of({0x80, 0x02, ']', 'q', 0, ']', 'q', 1, 'h', 0, 'a', 'h', 0, 'h', 1, 'a', '.'});
  EXPECT_NE(e.find("APPEND on a list that already sits inside another container"), std::string::npos) << e;
}

// Before the fix the machine built these nests and then overflowed the stack destroying
// them, one shared_ptr destructor per level.
TEST(Pickle, AMillionNestedTuplesAreRefusedWhileBuilding) {
  Bytes b{0x80, 0x02, 'N'};
  b.insert(b.end(), 1'000'000, 0x85);  // TUPLE1
  b.push_back('.');
  const std::string e = error_of(b);
  EXPECT_NE(e.find("nested deeper than 100 levels"), std::string::npos) << e;
  EXPECT_NE(e.find("opcode at byte 102"), std::string::npos) << "the 100th TUPLE1 would make level 101: " << e;
}

TEST(Pickle, ADeeplyNestedDictIsRefusedWhileBuilding) {
  Bytes b{0x80, 0x02, '}'};
  for (int i = 0; i < 200'000; ++i) b.insert(b.end(), {'N', '}'});
  b.insert(b.end(), 200'000, 's');  // SETITEM: each dict goes into the one below it
  b.push_back('.');
  EXPECT_NE(error_of(b).find("nested deeper than 100 levels"), std::string::npos);
}

TEST(Pickle, NestingWithinTheLimitStillLoadsAndIsDestroyed) {
  Bytes b{0x80, 0x02, 'N'};
  b.insert(b.end(), 99, 0x85);
  b.push_back('.');
  PyRef o = run(b);
  int depth = 0;
  for (const PyObject* p = o.get(); p->kind == PyObject::Kind::tuple; p = p->items.at(0).get()) ++depth;
  EXPECT_EQ(depth, 99);
}

// torch.Size(x) copies x's items: 50k memo references, copied over and over from a few
// bytes each, used to take gigabytes. Slots are now counted against the input's size.
TEST(Pickle, CopyingABigTupleRepeatedlyHitsTheBudgetOfTheInputSize) {
  PickleWriter p;
  p.proto();
  p.op('N');
  p.put();  // memo 0: None
  p.op(']');
  p.mark();
  for (int i = 0; i < 50'000; ++i) p.get(0);
  p.op('e');
  p.put();  // memo 1: [None] * 50000
  p.mark();  // all copies stay on the stack
  p.global("torch", "Size");  // memo 2
  for (int i = 0; i < 2000; ++i) {
    p.get(2);
    p.get(1);
    p.op(0x85);
    p.op('R');
  }
  p.tuple();
  p.stop();
  const std::string e = error_of(p.w.b);
  EXPECT_NE(e.find("container slots, memo entries and marks"), std::string::npos) << e;
}

TEST(Pickle, RefusedNamesAreEscapedSoANulCannotCutTheMessage) {
  const std::string e = error_of(malicious(std::string("os\0evil", 7), "system"));
  EXPECT_NE(e.find("refused pickle global 'os\\x00evil.system'"), std::string::npos) << e;
  EXPECT_EQ(e.find('\0'), std::string::npos);
  PickleWriter p;  // STACK_GLOBAL takes names of any length from the stack
  p.proto();
  p.str("os");
  p.str(std::string(10'000, 'a'));
  p.op(0x93);
  p.stop();
  EXPECT_LT(error_of(p.w.b).size(), 1000u) << "names are cut to 80 bytes";
}

TEST(Pickle, EveryTruncationOfAStateDictIsAnError) {
  testing::PickledTensor t{.name = "w", .key = "0", .storage_numel = 4, .size = {2, 2}, .stride = {2, 1}};
  const Bytes b = testing::state_dict_pickle({t, t}, false);
  auto load = [](const PyRef& pid) {
    auto o = std::make_shared<PyObject>();
    o->kind = PyObject::Kind::storage;
    o->storage.key = pid->items.at(2)->text;
    return o;
  };
  const size_t errors = testing::count_prefix_errors(b, [&](const ByteSource& s) {
    Cursor cur(s);
    unpickle(cur, load);
  });
  EXPECT_EQ(errors, b.size());
}

TEST(Pickle, RandomByteFlipsNeverCrash) {
  testing::PickledTensor t{.name = "w", .key = "0", .storage_numel = 4, .size = {2, 2}, .stride = {2, 1}};
  const Bytes good = testing::state_dict_pickle({t}, false);
  auto load = [](const PyRef&) {
    auto o = std::make_shared<PyObject>();
    o->kind = PyObject::Kind::storage;
    return o;
  };
  uint32_t state = 12345;
  for (int trial = 0; trial < 3000; ++trial) {
    Bytes b = good;
    for (int k = 0; k < 3; ++k) {
      state = state * 1664525u + 1013904223u;
      b[state % b.size()] = uint8_t(state >> 24);
    }
    MemorySource src(b);
    Cursor cur(src);
    try {
      unpickle(cur, load);
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace cbst::weights
