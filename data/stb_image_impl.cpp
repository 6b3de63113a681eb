// The one translation unit that compiles stb_image, for JPEG and BMP only.
// PNG never goes through stb: it expands palettes (GTA5 labels need the indices). The other
// formats stb knows (TGA, GIF, PSD, PNM, HDR, PIC) are compiled out: no dataset uses them,
// and fuzzing found a heap over-read in its 16-bit PNM path and a 17-byte TGA that allocates
// 1.3 GB.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO  // we read files ourselves so that errors name the file
#define STBI_FAILURE_USERMSG
// Zeroed allocations: stb 2.27 decodes a scan with a Huffman table that no DHT defined (the
// reader refuses such files first, data/image.cpp), and an all-zero table decodes every code
// as symbol 0 instead of reading the leftovers of an earlier decode.
#include <cstdlib>
#define STBI_MALLOC(size) std::calloc(1, size)
#define STBI_REALLOC(p, size) std::realloc(p, size)
#define STBI_FREE(p) std::free(p)
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#endif
#include <stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
