// For test programs that also run under an MPI launcher (ctest's `mpi` tests run them with
// `mpiexec -np 2`): MPI is finalised after the last test, as MPI requires. Include it in
// exactly one source file of the program.
#pragma once

#include <gtest/gtest.h>

#include "engine/dist.h"

namespace cbst::testing {

class FinalizeMpi : public ::testing::Environment {
 public:
  void TearDown() override { dist::finalize(); }
};

inline ::testing::Environment* const kFinalizeMpi = ::testing::AddGlobalTestEnvironment(new FinalizeMpi);

}  // namespace cbst::testing
