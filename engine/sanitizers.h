// CBST_ASAN: 1 in a build under AddressSanitizer, whichever compiler (GCC defines
// __SANITIZE_ADDRESS__, clang answers __has_feature), else 0.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define CBST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CBST_ASAN 1
#endif
#endif
#ifndef CBST_ASAN
#define CBST_ASAN 0
#endif
