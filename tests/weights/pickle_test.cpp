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

TEST(Pickle, SelfReferencingListDoesNotHang) {
  // ] q0 h0 a . : a list that contains itself.
  const PyRef l = run({0x80, 0x02, ']', 'q', 0, 'h', 0, 'a', '.'});
  ASSERT_EQ(l->items.size(), 1u);
  EXPECT_EQ(l->items[0].get(), l.get());
  l->items.clear();  // break the cycle so the test does not leak
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
