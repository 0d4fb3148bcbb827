// The fp32 FMA rate with 512-bit vectors: 24 independent vfmadd231ps zmm chains per thread (as
// many accumulators as nn/kernels/sgemm.rs's AVX-512 12 x 32 tile), registers only. On CPUs
// that run a 512-bit FMA as two 256-bit halves (AMD Zen 4) this equals fp32_fma_peak.c's rate.
//   gcc -O2 -mavx512f fp32_fma512_peak.c -o fma512 -lpthread && ./fma512 2
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
long n=200000000;
void* run(void*arg){
  __m512 a[24]; __m512 b=_mm512_set1_ps(1.0000001f), c=_mm512_set1_ps(0.999999f);
  for(int i=0;i<24;i++) a[i]=_mm512_set1_ps(i);
  for(long i=0;i<n;i++){
#define F(k) a[k]=_mm512_fmadd_ps(a[k],b,c);
    F(0)F(1)F(2)F(3)F(4)F(5)F(6)F(7)F(8)F(9)F(10)F(11)
    F(12)F(13)F(14)F(15)F(16)F(17)F(18)F(19)F(20)F(21)F(22)F(23)
  }
  float s=0; for(int i=0;i<24;i++){float t[16];_mm512_storeu_ps(t,a[i]);s+=t[0];}
  *(float*)arg=s; return 0;
}
int main(int argc,char**argv){
  int th=argc>1?atoi(argv[1]):1; pthread_t p[8]; float r[8];
  double t0=now(); for(int i=0;i<th;i++)pthread_create(&p[i],0,run,&r[i]); for(int i=0;i<th;i++)pthread_join(p[i],0);
  double dt=now()-t0; printf("%d threads: %.1f GFLOP/s fp32 AVX-512 (%.2f s)\n",th, th*(double)n*24*32/dt/1e9, dt);
}
