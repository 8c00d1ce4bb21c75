// bcryptprimitives.dll for the Wine test prefix only. Wine 8 does not ship it, and Rust's standard library
// (1.78 and later) takes its random bytes from ProcessPrng there, so without it no Rust DLL loads under Wine.
// Real Windows (10 and later) has the DLL; nothing of this is packaged.
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); // RtlGenRandom, advapi32

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
  while (length > 0) {
    ULONG n = length > 0x10000000 ? 0x10000000 : (ULONG)length;
    if (!SystemFunction036(data, n)) return FALSE;
    data += n;
    length -= n;
  }
  return TRUE;
}
