// The fp32 FMA rate of this CPU: 12 independent vfmadd231ps chains per thread, registers only.
//   gcc -O2 -mavx2 -mfma -include stdlib.h fp32_fma_peak.c -o fma -lpthread && ./fma 2
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
#include <pthread.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
void* run(void*arg){
  __m256 a[12]; __m256 b=_mm256_set1_ps(1.0000001f), c=_mm256_set1_ps(0.999999f);
  for(int i=0;i<12;i++) a[i]=_mm256_set1_ps(i);
  long n=400000000;
  for(long i=0;i<n;i++){
#define F(k) a[k]=_mm256_fmadd_ps(a[k],b,c);
    F(0)F(1)F(2)F(3)F(4)F(5)F(6)F(7)F(8)F(9)F(10)F(11)
  }
  float s=0; for(int i=0;i<12;i++){float t[8];_mm256_storeu_ps(t,a[i]);s+=t[0];}
  *(float*)arg=s; return 0;
}
int main(int argc,char**argv){
  int th=argc>1?atoi(argv[1]):1; pthread_t p[8]; float r[8];
  double t0=now(); for(int i=0;i<th;i++)pthread_create(&p[i],0,run,&r[i]); for(int i=0;i<th;i++)pthread_join(p[i],0);
  double dt=now()-t0; printf("%d threads: %.1f GFLOP/s (%.2f s)\n",th, th*400000000.0*12*16/dt/1e9, dt);
}
