// The bf16 multiply-add rate with AVX512-BF16: vdpbf16ps (pairs of bf16 products summed into
// f32) on 512-bit vectors, as nn/kernels/bf16.rs's AVX-512 tile runs it, 16 independent chains
// per thread, registers only; 64 FLOP (32 multiply-adds) per instruction.
//   gcc -O2 -mavx512f -mavx512bf16 bf16_dp_peak.c -o bf16dp -lpthread && ./bf16dp 2
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
long n=200000000;
void* run(void*arg){
  __m512 acc[16]; __m512bh a=(__m512bh)_mm512_set1_epi16(0x3f80);
  for(int i=0;i<16;i++) acc[i]=_mm512_set1_ps(i);
  __m512bh bb[2]={(__m512bh)_mm512_set1_epi16(0x3c00),(__m512bh)_mm512_set1_epi16(0x3b00)};
  for(long i=0;i<n;i++){
    __asm__ volatile("" : "+v"(a));
#define F(k) acc[k]=_mm512_dpbf16_ps(acc[k],a,bb[k&1]);
    F(0)F(1)F(2)F(3)F(4)F(5)F(6)F(7)F(8)F(9)F(10)F(11)F(12)F(13)F(14)F(15)
  }
  float s=0; for(int i=0;i<16;i++){float t[16];_mm512_storeu_ps(t,acc[i]);s+=t[0];}
  *(float*)arg=s; return 0;
}
int main(int argc,char**argv){
  int th=argc>1?atoi(argv[1]):1; pthread_t p[8]; float r[8];
  double t0=now(); for(int i=0;i<th;i++)pthread_create(&p[i],0,run,&r[i]); for(int i=0;i<th;i++)pthread_join(p[i],0);
  double dt=now()-t0; printf("%d threads: %.1f GFLOP/s bf16 vdpbf16ps (%.2f s)\n",th, th*(double)n*16*64/dt/1e9, dt);
}
